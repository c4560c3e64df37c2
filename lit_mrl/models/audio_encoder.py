"""AudioEncoder: waveform in, embedding out (log-mel frontend + encoder).

Everything that embeds audio (the pre-training methods, the probe on a live encoder,
``python -m lit_mrl embed``, the HEAR module, the W&B panels) holds one of these and
uses only its methods, so none of them needs a LightningModule or reaches into the
frontend's or encoder's attributes. It owns its input contract: how a window is
standardised (for training clips and embedding windows alike) and its embedding rule
(window length and hop of a track's timeline, whose mean is the track embedding), which
``embed``, the HEAR module and an exported artifact all follow.

An AudioEncoder is shared as a folder (``config.json`` + ``model.safetensors`` + a model
card; :mod:`lit_mrl.models.export`), locally or on the Hugging Face Hub:
:meth:`AudioEncoder.from_pretrained`, :meth:`AudioEncoder.save_pretrained`,
:meth:`AudioEncoder.push_to_hub`. Loading one runs no code from it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from lit_mrl.models.frontend import LogMelSpectrogram, standardize


class AudioEncoder(nn.Module):
    """A log-mel frontend and an encoder of standardised log-mel windows.

    Args:
        encoder: maps ``(B, n_mels, frames)`` (or ``(B, 1, n_mels, frames)``) standardised
            log-mel windows to ``(B, embed_dim)``; needs an ``embed_dim`` attribute.
        frontend: waveform-to-log-mel module; default: MULE's 16 kHz log-mel frontend.
        channels_last: feed the encoder channels-last inputs (faster convs on GPUs).
        compile: ``torch.compile`` the encoder in place (state-dict keys are unchanged).
        window_seconds: the embedding rule: length of a timeline window, in seconds.
        hop_seconds: the embedding rule: distance between timeline windows, in seconds
            (the track embedding is the mean of its timeline).
    """

    def __init__(
        self,
        encoder: nn.Module,
        frontend: LogMelSpectrogram | None = None,
        channels_last: bool = False,
        compile: bool = False,
        window_seconds: float = 3.0,
        hop_seconds: float = 2.0,
    ) -> None:
        super().__init__()
        if not isinstance(getattr(encoder, "embed_dim", None), int):
            raise ValueError(f"the encoder {type(encoder).__name__} has no int embed_dim")
        for name, value in (("window_seconds", window_seconds), ("hop_seconds", hop_seconds)):
            if not value > 0:
                raise ValueError(f"{name} must be positive, got {value}")
        self.encoder = encoder
        self.frontend = frontend if frontend is not None else LogMelSpectrogram()
        self.channels_last = channels_last
        self.window_seconds = float(window_seconds)
        self.hop_seconds = float(hop_seconds)
        self.spec: dict[str, Any] | None = None  # its config, when built from a file
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
    def hop_length(self) -> int:
        """Samples per log-mel frame."""
        return int(self.frontend.hop_length)

    @property
    def min_samples(self) -> int:
        """Shortest usable audio: one log-mel frame, in samples."""
        return self.hop_length

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

    @property
    def embedding_rule(self) -> dict[str, Any]:
        """How a track embedding is made: windows, hop, placement, standardisation."""
        return {
            "window_seconds": self.window_seconds,
            "hop_seconds": self.hop_seconds,
            "placement": self.timeline,
            "standardize": bool(self.frontend.standardize),
            "std_correction": self.std_correction,
            "track_embedding": "mean of the timeline",
        }

    def standardize(self, spec: Tensor) -> Tensor:
        """Standardise log-mel windows ``(..., n_mels, frames)`` as this encoder expects.

        Each window on its own: minus its mean, over its std (floored at 0.01, with the
        frontend's ``std_correction``); the identity for a frontend with
        ``standardize=False``. Training clips and embedding windows both pass here.
        """
        if not self.frontend.standardize:
            return spec
        return standardize(spec, correction=self.std_correction)

    def spectrogram(self, audio: Tensor) -> Tensor:
        """The encoder's input for clips: ``(B, T)`` -> standardised ``(B, n_mels, num_frames(T))``."""
        return self.standardize(self.frontend.logmel(audio))

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

    @classmethod
    def from_pretrained(
        cls,
        name: str | Path,
        allowed_classes: list[str] | tuple[str, ...] = (),
        map_location: str | torch.device = "cpu",
        revision: str | None = None,
    ) -> AudioEncoder:
        """Load an exported encoder: a folder, or a Hugging Face Hub repository ``org/name``.

        Only ``config.json`` and ``model.safetensors`` are read (no pickle, no remote code);
        the classes the config names are checked like a checkpoint's
        (:mod:`lit_mrl.trust`). A Hub repository is fetched with ``huggingface_hub``
        (``pip install lit_mrl[hub]``) and read from its cache; ``HF_HUB_OFFLINE=1`` uses
        the cache only.

        Raises:
            FileNotFoundError: no such folder or cached repository.
            ValueError: naming the file and field, for anything that is not a lit_mrl
                encoder artifact.
        """
        from lit_mrl.models.export import read_artifact, resolve_artifact

        folder = resolve_artifact(name, revision)
        return read_artifact(folder, allowed_classes, map_location).audio_encoder.eval()

    def save_pretrained(self, folder: str | Path, **card: Any) -> Path:
        """Write this encoder as an artifact folder (see :mod:`lit_mrl.models.export`).

        Needs the encoder's config (``self.spec``), which every loader sets; an encoder
        built in Python gets one with :func:`lit_mrl.models.export.spec_of` or by export
        from its checkpoint (``python -m lit_mrl export``).
        """
        from lit_mrl.models.export import write_artifact

        return write_artifact(self, folder, **card)

    def push_to_hub(self, repo_id: str, private: bool = False, **card: Any) -> str:
        """Save to a temporary folder and upload it to the Hub repository ``repo_id``."""
        import tempfile

        from lit_mrl.models.export import upload_artifact

        with tempfile.TemporaryDirectory() as tmp:
            folder = self.save_pretrained(Path(tmp) / "artifact", **card)
            return upload_artifact(folder, repo_id, private)
