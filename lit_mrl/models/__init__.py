from lit_mrl.models.encoders import Encoder, SmallCNN
from lit_mrl.models.frontend import LogMelSpectrogram, standardize
from lit_mrl.models.heads import ProjectionHead

__all__ = ["Encoder", "LogMelSpectrogram", "ProjectionHead", "SmallCNN", "standardize"]
