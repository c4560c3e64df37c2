"""AudioEncoder: waveform in, embedding out (log-mel frontend + encoder).

Everything that embeds audio (the pre-training methods, the probe on a live encoder,
``python -m lit_mrl embed``, the HEAR module, the W&B panels) holds one of these and
uses only its methods, so none of them needs a LightningModule or reaches into the
frontend's or encoder's attributes.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from lit_mrl.models.frontend import LogMelSpectrogram


class AudioEncoder(nn.Module):
    """A log-mel frontend and an encoder of standardised log-mel windows.

    Args:
        encoder: maps ``(B, n_mels, frames)`` (or ``(B, 1, n_mels, frames)``) standardised
            log-mel windows to ``(B, embed_dim)``; needs an ``embed_dim`` attribute.
        frontend: waveform-to-log-mel module; default: MULE's 16 kHz log-mel frontend.
        channels_last: feed the encoder channels-last inputs (faster convs on GPUs).
        compile: ``torch.compile`` the encoder in place (state-dict keys are unchanged).
    """

    def __init__(
        self,
        encoder: nn.Module,
        frontend: LogMelSpectrogram | None = None,
        channels_last: bool = False,
        compile: bool = False,
    ) -> None:
        super().__init__()
        if not isinstance(getattr(encoder, "embed_dim", None), int):
            raise ValueError(f"the encoder {type(encoder).__name__} has no int embed_dim")
        self.encoder = encoder
        self.frontend = frontend if frontend is not None else LogMelSpectrogram()
        self.channels_last = channels_last
        if channels_last:
            self.encoder.to(memory_format=torch.channels_last)
        if compile:
            self.encoder.compile()

    @property
    def embed_dim(self) -> int:
        """Embedding size D."""
        return int(self.encoder.embed_dim)

    @property
    def encoder_class(self) -> str:
        """Dotted class path of the encoder (for records of what made an embedding)."""
        return f"{type(self.encoder).__module__}.{type(self.encoder).__qualname__}"

    @property
    def sample_rate(self) -> int:
        """Audio rate the frontend expects, in Hz."""
        return int(self.frontend.sample_rate)

    @property
    def frame_rate(self) -> float:
        """Log-mel frames per second."""
        return float(self.frontend.frame_rate)

    @property
    def fft_size(self) -> int:
        """STFT size in samples (how far a frame's analysis window reaches)."""
        return int(self.frontend.n_fft)

    @property
    def min_samples(self) -> int:
        """Shortest usable audio: one log-mel frame, in samples."""
        return int(self.frontend.hop_length)

    @property
    def std_correction(self) -> int:
        """Bessel's correction of the per-window std: 1 (lit_mrl) or 0 (MULE)."""
        return int(self.frontend.std_correction)

    @property
    def timeline(self) -> str:
        """Window placement of track timelines: ``"lit_mrl"`` or ``"mule"`` (see ``docs/mule.md``)."""
        return str(self.frontend.timeline)

    def num_frames(self, num_samples: int) -> int:
        """Log-mel frames of a track of ``num_samples`` samples."""
        return int(self.frontend.num_frames(num_samples))

    def spectrogram(self, audio: Tensor) -> Tensor:
        """The encoder's input for clips: ``(B, T)`` -> standardised ``(B, n_mels, num_frames(T))``."""
        return self.frontend(audio)

    def track_logmel(self, audio: Tensor, chunk_frames: int = 6000) -> Tensor:
        """Unstandardised log-mel of one track ``(T,)`` -> ``(n_mels, num_frames(T))``, in chunks."""
        return self.frontend.track_logmel(audio, chunk_frames)

    def encode(self, windows: Tensor) -> Tensor:
        """Embed standardised log-mel windows ``(B, n_mels, frames)`` -> ``(B, embed_dim)``."""
        spec = windows.unsqueeze(1)  # (B, 1, n_mels, frames)
        if self.channels_last:
            spec = spec.contiguous(memory_format=torch.channels_last)
        return self.encoder(spec)

    def forward(self, audio: Tensor) -> Tensor:
        """Embed clips: ``(B, T)`` or ``(B, 1, T)`` waveform at ``sample_rate`` -> ``(B, D)``.

        Each clip is one window (standardised as a whole); for tracks of any length use
        :class:`~lit_mrl.embed.extractor.TimelineEmbedder`.
        """
        return self.encode(self.spectrogram(audio))
