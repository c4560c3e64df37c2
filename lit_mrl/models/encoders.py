"""The encoder interface and a small CNN encoder.

Every encoder is a plain ``nn.Module`` with an ``embed_dim`` attribute and
``forward(spec) -> (B, embed_dim)``; methods and probes depend on nothing else.
Encoders that want frame-level output also provide ``forward_features``.
"""

from typing import Protocol, runtime_checkable

from torch import Tensor, nn


@runtime_checkable
class Encoder(Protocol):
    """What lit_mrl needs from an encoder."""

    embed_dim: int

    def __call__(self, spec: Tensor) -> Tensor:
        """Map ``(B, n_mels, frames)`` log-mel windows to ``(B, embed_dim)`` embeddings."""
        ...


class ConvBlock(nn.Sequential):
    """3x3 conv, batch norm, ReLU, then max-pool by ``pool`` over (freq, time)."""

    def __init__(self, in_channels: int, out_channels: int, pool: tuple[int, int]) -> None:
        super().__init__(
            nn.Conv2d(in_channels, out_channels, kernel_size=3, padding=1, bias=False),
            nn.BatchNorm2d(out_channels),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(pool, ceil_mode=True),
        )


class SmallCNN(nn.Module):
    """A VGG-style CNN on log-mel windows: cheap baseline and test encoder.

    Args:
        widths: output channels of each conv block; ``embed_dim`` is the last one.
        in_channels: channels of the input spectrogram (1 for mono log-mel).
    """

    def __init__(self, widths: list[int] = [16, 32, 64], in_channels: int = 1) -> None:  # noqa: B006
        super().__init__()
        blocks = []
        for width in widths:
            blocks.append(ConvBlock(in_channels, width, pool=(2, 2)))
            in_channels = width
        self.blocks = nn.Sequential(*blocks)
        self.embed_dim = widths[-1]

    def forward_features(self, spec: Tensor) -> Tensor:
        """Frame-level features.

        Args:
            spec: ``(B, n_mels, frames)`` or ``(B, 1, n_mels, frames)``.

        Returns:
            ``(B, frames / 2**len(widths), embed_dim)``, mean over frequency.
        """
        if spec.dim() == 3:
            spec = spec.unsqueeze(1)  # (B, F, T) -> (B, 1, F, T)
        maps = self.blocks(spec)  # (B, D, F', T')
        return maps.mean(dim=2).transpose(1, 2)  # (B, T', D)

    def forward(self, spec: Tensor) -> Tensor:
        """Embed ``(B, n_mels, frames)`` windows into ``(B, embed_dim)``."""
        return self.forward_features(spec).mean(dim=1)
