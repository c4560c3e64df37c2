"""Encoders without learning: baselines every pre-trained encoder should beat."""

import torch
from torch import Tensor, nn


class LogMelStats(nn.Module):
    """Per-band mean and standard deviation of a log-mel window over time.

    A trivial representation (96 means + 96 stds = 192-d with MULE's frontend): a probe
    on it shows what spectral statistics alone reach on a task, so a pre-trained encoder
    that does not beat it has not learned anything a probe could not get for free. It
    has no parameters; windows are standardised as for every encoder, so the means are
    relative band levels.

    Args:
        n_mels: mel bands of the input; ``embed_dim = 2 * n_mels``.
    """

    def __init__(self, n_mels: int = 96) -> None:
        super().__init__()
        self.n_mels = n_mels
        self.embed_dim = 2 * n_mels

    def forward(self, spec: Tensor) -> Tensor:
        """``(B, n_mels, frames)`` or ``(B, 1, n_mels, frames)`` -> ``(B, 2 * n_mels)``."""
        if spec.dim() == 4:
            spec = spec.squeeze(1)  # (B, 1, F, T) -> (B, F, T)
        if spec.shape[-2] != self.n_mels:
            raise ValueError(f"expected {self.n_mels} mel bands, got {spec.shape[-2]}")
        std, mean = torch.std_mean(spec, dim=-1)  # (B, F) each
        return torch.cat([mean, std], dim=1)
