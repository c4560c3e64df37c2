from lit_mrl.models.audio_encoder import AudioEncoder
from lit_mrl.models.baselines import LogMelStats
from lit_mrl.models.encoders import Encoder, SmallCNN
from lit_mrl.models.frontend import LogMelSpectrogram, standardize
from lit_mrl.models.heads import ProjectionHead

__all__ = [
    "AudioEncoder",
    "Encoder",
    "LogMelSpectrogram",
    "LogMelStats",
    "ProjectionHead",
    "SmallCNN",
    "standardize",
]
