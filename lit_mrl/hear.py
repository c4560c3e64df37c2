"""The HEAR 2021 common API (https://hearbenchmark.com/hear-api.html) over a lit_mrl encoder.

    import lit_mrl.hear as hear

    model = hear.load_model("last.ckpt")  # or an exported encoder folder
    scene = hear.get_scene_embeddings(audio, model)  # (n_sounds, D)
    emb, ms = hear.get_timestamp_embeddings(audio, model)  # (n_sounds, N, D), (n_sounds, N)

Scene embeddings follow the encoder's embedding rule
(:attr:`~lit_mrl.models.AudioEncoder.embedding_rule`: 3 s windows every 2 s, placed as
the encoder says, the mean of the timeline), so they equal the track embeddings of
``python -m lit_mrl embed`` by default. Timestamp embeddings keep their own hop (0.5 s by
default, finer than the rule's), each stamped with the centre of the audio it covers
(:mod:`lit_mrl.embed.windows`). Windows of all sounds in a call go through the encoder
together, ``batch_windows`` at a time.

Input is checked as HEAR specifies it (finite float audio in [-1, 1]): NaN or Inf is a
ValueError; finite samples outside [-1, 1] are clipped to it, with a warning (the
log-mel of 1e30 would overflow float32; the sharder clips the same way). Zero sounds
give empty tensors of the right shape. An embedding that comes out non-finite anyway
(broken weights) is a ValueError, never returned.
"""

from __future__ import annotations

import warnings

import numpy as np
import torch
from torch import Tensor, nn

from lit_mrl.checkpoints import load_audio_encoder
from lit_mrl.embed.extractor import TimelineEmbedder
from lit_mrl.embed.windows import timeline_starts
from lit_mrl.models.audio_encoder import AudioEncoder


class HearModel(nn.Module):
    """An audio encoder wrapped with the attributes HEAR asks for.

    Args:
        audio_encoder: waveform-to-embedding model (e.g. a trained module's).
        hop_seconds: distance between timestamp embeddings.
        window_seconds: window length (default: the encoder's rule).
        batch_windows: windows per encoder forward.
        scene_hop_seconds: distance between the windows a scene embedding averages
            (default: the encoder's rule, which ``embed`` follows too).
    """

    def __init__(
        self,
        audio_encoder: AudioEncoder,
        hop_seconds: float = 0.5,
        window_seconds: float | None = None,
        batch_windows: int = 128,
        scene_hop_seconds: float | None = None,
    ) -> None:
        super().__init__()
        self.audio_encoder = audio_encoder.eval()
        self.sample_rate = audio_encoder.sample_rate
        self.scene_embedding_size = audio_encoder.embed_dim
        self.timestamp_embedding_size = self.scene_embedding_size
        self.hop_seconds = hop_seconds
        self.window_seconds = window_seconds or audio_encoder.window_seconds
        self.scene_hop_seconds = scene_hop_seconds or audio_encoder.hop_seconds
        self.batch_windows = batch_windows

    def embedder(self, device: torch.device, hop_seconds: float | None = None) -> TimelineEmbedder:
        """A :class:`TimelineEmbedder` on ``device`` (timestamp hop unless ``hop_seconds``)."""
        return TimelineEmbedder(
            self.audio_encoder, self.window_seconds, hop_seconds or self.hop_seconds,
            self.batch_windows, device,
        )  # fmt: skip


def load_model(
    model_file_path: str = "",
    hop_seconds: float = 0.5,
    window_seconds: float | None = None,
    batch_windows: int = 128,
    scene_hop_seconds: float | None = None,
) -> HearModel:
    """Load a checkpoint written by ``python -m lit_mrl fit``, or an exported encoder folder.

    Only the audio encoder is built, after the file's classes are checked
    (:func:`lit_mrl.checkpoints.load_audio_encoder`).

    Args:
        model_file_path: the ``.ckpt`` file or the encoder folder.
        hop_seconds: distance between timestamp embeddings.
        window_seconds: window length (default: the encoder's rule).
        batch_windows: windows per encoder forward.
        scene_hop_seconds: hop of the windows a scene embedding averages (default: the
            encoder's rule).

    Raises:
        ValueError: no path given (lit_mrl models always need their weights).
    """
    if not model_file_path:
        raise ValueError("lit_mrl.hear.load_model needs a checkpoint path (model_file_path)")
    audio_encoder, _ = load_audio_encoder(model_file_path)
    return HearModel(audio_encoder, hop_seconds, window_seconds, batch_windows, scene_hop_seconds)


def get_timestamp_embeddings(audio: Tensor, model: HearModel) -> tuple[Tensor, Tensor]:
    """Embeddings along time.

    Args:
        audio: ``(n_sounds, n_samples)`` mono audio in [-1, 1] at ``model.sample_rate``.
        model: from :func:`load_model`.

    Returns:
        ``(n_sounds, n_timestamps, timestamp_embedding_size)`` float32 embeddings and
        ``(n_sounds, n_timestamps)`` window centres in milliseconds, on ``audio``'s device.

    Raises:
        ValueError: for audio that is not 2-D, shorter than one frame, or not finite, and
            for embeddings that are not finite.
    """
    return _timeline(audio, model, model.hop_seconds)


def _timeline(audio: Tensor, model: HearModel, hop_seconds: float) -> tuple[Tensor, Tensor]:
    audio = checked_audio(audio)
    device = next(model.parameters()).device
    embedder = model.embedder(device, hop_seconds)
    if len(audio) == 0:  # no sounds: (0, N, D) and (0, N) for sounds of this length
        count = len(_starts(embedder, audio.shape[1]))
        empty = torch.zeros(0, count, model.timestamp_embedding_size, device=audio.device)
        return empty, torch.zeros(0, count, device=audio.device)
    rows = list(embedder.embed_tracks({"audio": sound} for sound in audio))
    emb = torch.from_numpy(np.stack([row["timeline"] for row in rows]))
    bad = (~torch.isfinite(emb)).flatten(1).any(dim=1)
    if bad.any():
        raise ValueError(
            f"the model gave NaN/Inf embeddings for {int(bad.sum())} of {len(emb)} sounds "
            f"(the first: sound {int(bad.nonzero()[0])}): its weights are broken"
        )
    stamps = torch.from_numpy(np.stack([row["timestamps"] for row in rows]) * 1000.0)
    return emb.to(audio.device), stamps.float().to(audio.device)


def checked_audio(audio: Tensor) -> Tensor:
    """``audio`` as HEAR gives it: 2-D and finite; samples outside [-1, 1] clipped (warned).

    Raises:
        ValueError: not ``(n_sounds, n_samples)``, or NaN/Inf samples.
    """
    if audio.ndim != 2:
        raise ValueError(f"expected audio (n_sounds, n_samples), got {tuple(audio.shape)}")
    finite = torch.isfinite(audio)
    if not finite.all():
        sounds = int((~finite).any(dim=1).sum())
        raise ValueError(f"audio has NaN or Inf samples in {sounds} of {len(audio)} sounds")
    outside = int((audio.abs() > 1).sum())
    if outside:
        warnings.warn(
            f"{outside} audio samples outside [-1, 1] (largest {float(audio.abs().max()):.3g}) "
            "were clipped: HEAR audio is in [-1, 1]",
            stacklevel=3,
        )
        audio = audio.clamp(-1.0, 1.0)
    return audio


def _starts(embedder: TimelineEmbedder, num_samples: int) -> np.ndarray:
    if num_samples < embedder.min_samples:
        raise ValueError(
            f"audio has {num_samples} samples, less than one frame ({embedder.min_samples})"
        )
    frames = embedder.audio_encoder.num_frames(num_samples)
    return timeline_starts(embedder.timeline, frames, embedder.window_frames, embedder.hop_frames)


def get_scene_embeddings(audio: Tensor, model: HearModel) -> Tensor:
    """One embedding per sound: the encoder's track embedding (its rule's timeline mean).

    Args:
        audio: ``(n_sounds, n_samples)`` mono audio in [-1, 1] at ``model.sample_rate``.
        model: from :func:`load_model`.

    Returns:
        ``(n_sounds, scene_embedding_size)`` float32, on ``audio``'s device.
    """
    emb, _ = _timeline(audio, model, model.scene_hop_seconds)
    return emb.mean(dim=1)
