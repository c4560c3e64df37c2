"""SF-NFNet-F0: the slow-fast normaliser-free encoder of MULE (McCallum et al. 2022).

Architecture of Wang et al. 2021, "Towards learning universal audio representations"
(https://arxiv.org/abs/2111.12124), as built by the released MULE code
(``mule/models/sfnfnetf0.py``); see ``reference/paper-notes.md`` section 1.3.

Data flow for a ``(B, 96, 300)`` log-mel window (maps are ``C x F x T``)::

    spec -+-> slow stem  128 x 24 x 19 -> [fuse -> slow stage s] x 4 -> 1536 x 3 x 19 -> GAP -+
          |                                 ^ fast map entering stage s                       +-> act
          +-> fast stem   16 x 24 x 75 -> [        fast stage s] x 4 ->  192 x 3 x 75 -> GAP -+

    fuse: fast -> WS-conv (1, 7) stride (1, 4) -> WS-conv 1x1 -> concatenated onto slow channels
"""

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor, nn

from lit_mrl.models.layers import NFBlock, ScaledGELU, WSConv2d, avg_pool2d_same

# Stem geometry (freq, time). Slow: stride 16 over time, frequency-only kernels except the
# last; fast: stride 4 over time. Both reduce 96 mel bands to 24.
SLOW_STEM_KERNELS = ((3, 1), (3, 1), (3, 1), (3, 3))
SLOW_STEM_STRIDES = ((2, 8), (1, 1), (1, 1), (2, 2))
FAST_STEM_KERNELS = ((3, 3), (3, 3), (3, 3), (3, 3))
FAST_STEM_STRIDES = ((2, 2), (1, 1), (1, 1), (2, 2))


def nf_betas(depths: Sequence[int], alpha: float = 0.2) -> list[list[float]]:
    """Return the ``beta = 1 / expected std`` of every block's input, per stage.

    MULE's schedule: the expected variance starts at 1 for the first stage and at
    ``1 + alpha**2`` for every later stage (not the previous stage's output variance, as
    in DeepMind's NFNet), and each block adds ``alpha**2``. For depths (1, 2, 6, 3) and
    alpha 0.2 this reproduces the table of the notes: [1.0], [0.98058, 0.96225],
    [0.98058, ..., 0.89803], [0.98058, 0.96225, 0.94491].
    """
    betas = []
    for stage, depth in enumerate(depths):
        var = 1.0 if stage == 0 else 1.0 + alpha**2
        betas.append([(var + i * alpha**2) ** -0.5 for i in range(depth)])
    return betas


def _stem(
    in_channels: int,
    widths: Sequence[int],
    kernels: Sequence[tuple[int, int]],
    strides: Sequence[tuple[int, int]],
) -> nn.Sequential:
    """WS-convs with a scaled GELU after each but the last."""
    layers: list[nn.Module] = []
    for i, (width, kernel, stride) in enumerate(zip(widths, kernels, strides, strict=True)):
        layers.append(WSConv2d(in_channels, width, kernel, stride))
        if i < len(widths) - 1:
            layers.append(ScaledGELU())
        in_channels = width
    return nn.Sequential(*layers)


class FastToSlowFusion(nn.Module):
    """Fast-to-slow lateral connection: strided time conv, 1x1 expansion, concat onto slow.

    Both convs are linear WS-convs (no activation).

    Args:
        fast_channels: channels of the fast map.
        mid_channels: output channels of the time conv.
        out_channels: channels appended to the slow map.
        time_kernel: length of the time kernel.
        time_stride: fast-to-slow time ratio.
    """

    def __init__(
        self,
        fast_channels: int,
        mid_channels: int,
        out_channels: int,
        time_kernel: int = 7,
        time_stride: int = 4,
    ) -> None:
        super().__init__()
        self.time_conv = WSConv2d(fast_channels, mid_channels, (1, time_kernel), (1, time_stride))
        self.expand = WSConv2d(mid_channels, out_channels, 1)

    def forward(self, slow: Tensor, fast: Tensor) -> Tensor:
        """Fuse ``fast (B, C_f, F, T_f)`` into ``slow (B, C_s, F, T_s)`` -> ``(B, C_s + out, F, T_s)``."""
        return torch.cat([slow, self.expand(self.time_conv(fast))], dim=1)


class SFNFNetF0(nn.Module):
    """Slow-fast NFNet-F0 encoder of MULE; defaults build the paper's 62,345,742-param model.

    Input is a standardised log-mel window ``spec`` of shape ``(B, n_mels, frames)`` or
    ``(B, in_channels, n_mels, frames)`` (paper: 96 x 300, i.e. 3 s). The output embedding
    is ``act(GAP(slow) || GAP(fast))`` with ``embed_dim = slow_widths[-1] + fast_widths[-1]``
    (1728). Frame rate: the slow path keeps one frame per 16 input frames (19 for 300).

    Every structural number is an argument, so a scaled model is a config; see
    :meth:`tiny` for the CPU test/demo variant.

    Args:
        in_channels: input channels (1 for a log-mel spectrogram).
        slow_stem_widths: output channels of the four slow stem convs.
        fast_stem_widths: output channels of the four fast stem convs.
        slow_widths: output channels of the four slow stages.
        fast_widths: output channels of the four fast stages.
        depths: blocks per stage (same for both paths).
        slow_group_size: channels per group in the slow path's grouped convs.
        fast_group_size: channels per group in the fast path's grouped convs.
        fusion_widths: channels the fast path adds to the slow path before each stage.
        fusion_time_widths: output channels of each fusion's time conv. MULE keeps the fast
            map's channel count except before stage 1 (32 from the 16-channel fast stem).
        fusion_time_kernel: time kernel of the fusion conv.
        fusion_time_stride: fast-to-slow frame ratio (must equal slow / fast stem time stride).
        alpha: residual branch scale.
        drop_path_rate: block ``i`` of the ``N`` blocks of a path drops its residual branch
            with probability ``drop_path_rate * i / N`` (0 to 0.0917 by default).
        stochdepth_rescale: inverted stochastic depth (kept branches divided by the survival
            probability) instead of MULE's unscaled form.
        channels_last: keep parameters and activations in ``torch.channels_last`` memory
            format (faster convs on most backends; same results).
    """

    def __init__(
        self,
        in_channels: int = 1,
        slow_stem_widths: Sequence[int] = (16, 32, 64, 128),
        fast_stem_widths: Sequence[int] = (2, 4, 8, 16),
        slow_widths: Sequence[int] = (256, 512, 1536, 1536),
        fast_widths: Sequence[int] = (32, 64, 192, 192),
        depths: Sequence[int] = (1, 2, 6, 3),
        slow_group_size: int = 128,
        fast_group_size: int = 16,
        fusion_widths: Sequence[int] = (128, 256, 512, 3072),
        fusion_time_widths: Sequence[int] = (32, 32, 64, 192),
        fusion_time_kernel: int = 7,
        fusion_time_stride: int = 4,
        alpha: float = 0.2,
        drop_path_rate: float = 0.1,
        stochdepth_rescale: bool = False,
        channels_last: bool = False,
    ) -> None:
        super().__init__()
        num_stages = len(depths)
        per_stage = {
            "slow_widths": slow_widths,
            "fast_widths": fast_widths,
            "fusion_widths": fusion_widths,
            "fusion_time_widths": fusion_time_widths,
        }
        for name, seq in per_stage.items():
            if len(seq) != num_stages:
                raise ValueError(f"{name} has {len(seq)} entries but depths has {num_stages}")
        self.in_channels = in_channels
        self.fusion_time_stride = fusion_time_stride
        self.channels_last = channels_last
        self.embed_dim = slow_widths[-1] + fast_widths[-1]

        self.slow_stem = _stem(in_channels, slow_stem_widths, SLOW_STEM_KERNELS, SLOW_STEM_STRIDES)
        self.fast_stem = _stem(in_channels, fast_stem_widths, FAST_STEM_KERNELS, FAST_STEM_STRIDES)

        betas = nf_betas(depths, alpha)
        total = sum(depths)
        drop_rates = [drop_path_rate * i / total for i in range(total)]
        self.fusions = nn.ModuleList()
        self.slow_stages = nn.ModuleList()
        self.fast_stages = nn.ModuleList()
        slow_in, fast_in, block_idx = slow_stem_widths[-1], fast_stem_widths[-1], 0
        for s in range(num_stages):
            self.fusions.append(
                FastToSlowFusion(
                    fast_in,
                    fusion_time_widths[s],
                    fusion_widths[s],
                    fusion_time_kernel,
                    fusion_time_stride,
                )
            )
            rates = drop_rates[block_idx : block_idx + depths[s]]
            stage_args = dict(
                depth=depths[s],
                betas=betas[s],
                alpha=alpha,
                freq_stride=1 if s == 0 else 2,  # F: 24 -> 24 -> 12 -> 6 -> 3
                drop_rates=rates,
                stochdepth_rescale=stochdepth_rescale,
            )
            self.slow_stages.append(
                _stage(slow_in + fusion_widths[s], slow_widths[s], slow_group_size, **stage_args)
            )
            self.fast_stages.append(_stage(fast_in, fast_widths[s], fast_group_size, **stage_args))
            slow_in, fast_in, block_idx = slow_widths[s], fast_widths[s], block_idx + depths[s]
        self.act = ScaledGELU()
        if channels_last:
            self.to(memory_format=torch.channels_last)

    @classmethod
    def tiny(cls, **overrides: Any) -> "SFNFNetF0":
        """Build the 37,716-parameter variant for CPU tests and demos (``embed_dim`` 60)."""
        return cls(**{**TINY_ARGS, **overrides})

    def _prepare(self, spec: Tensor) -> Tensor:
        if spec.ndim == 3:
            spec = spec.unsqueeze(1)  # (B, F, T) -> (B, 1, F, T)
        if spec.ndim != 4 or spec.shape[1] != self.in_channels:
            raise ValueError(
                f"expected (B, n_mels, frames) or (B, {self.in_channels}, n_mels, frames), "
                f"got {tuple(spec.shape)}"
            )
        if self.channels_last:
            spec = spec.contiguous(memory_format=torch.channels_last)
        return spec

    def forward_maps(self, spec: Tensor) -> tuple[Tensor, Tensor]:
        """Run stems and stages.

        Args:
            spec: ``(B, F, T)`` or ``(B, in_channels, F, T)`` standardised log-mel windows.

        Returns:
            slow ``(B, slow_widths[-1], F / 32, T / 16)`` and fast
            ``(B, fast_widths[-1], F / 32, T / 4)`` maps (sizes rounded up; 3 x 19 and
            3 x 75 for 96 x 300), before any activation.
        """
        spec = self._prepare(spec)
        slow, fast = self.slow_stem(spec), self.fast_stem(spec)
        for fusion, slow_stage, fast_stage in zip(
            self.fusions, self.slow_stages, self.fast_stages, strict=True
        ):
            slow = slow_stage(fusion(slow, fast))
            fast = fast_stage(fast)
        return slow, fast

    def forward(self, spec: Tensor) -> Tensor:
        """Embed windows: ``(B, F, T)`` or ``(B, in_channels, F, T)`` -> ``(B, embed_dim)``."""
        slow, fast = self.forward_maps(spec)
        return self.act(torch.cat([slow.mean(dim=(2, 3)), fast.mean(dim=(2, 3))], dim=1))

    def forward_features(self, spec: Tensor) -> Tensor:
        """Frame-level embeddings at the slow frame rate (one per 16 input frames).

        Both maps are averaged over frequency; the fast map is then average-pooled over
        time by ``fusion_time_stride`` (TF "same": the last window may be shorter) to the
        slow frame rate; the two are concatenated and activated like :meth:`forward`.
        The time-mean of these features is *not* :meth:`forward` (the activation is
        non-linear and the last fast window is partial).

        Args:
            spec: ``(B, F, T)`` or ``(B, in_channels, F, T)`` standardised log-mel windows.

        Returns:
            ``(B, T', embed_dim)`` with ``T' = ceil(T / 16)`` (19 for 300 frames).
        """
        slow, fast = self.forward_maps(spec)
        stride = self.fusion_time_stride
        fast = avg_pool2d_same(fast.mean(dim=2, keepdim=True), (1, stride), (1, stride))
        frames = torch.cat([slow.mean(dim=2), fast.squeeze(2)], dim=1)  # (B, D, T')
        return self.act(frames.transpose(1, 2))


def _stage(
    in_channels: int,
    out_channels: int,
    group_size: int,
    depth: int,
    betas: Sequence[float],
    alpha: float,
    freq_stride: int,
    drop_rates: Sequence[float],
    stochdepth_rescale: bool,
) -> nn.Sequential:
    """One NFNet stage: a transition block then ``depth - 1`` identity-skip blocks."""
    blocks = [
        NFBlock(
            in_channels if i == 0 else out_channels,
            out_channels,
            group_size,
            beta=betas[i],
            alpha=alpha,
            freq_stride=freq_stride if i == 0 else 1,
            drop_rate=drop_rates[i],
            stochdepth_rescale=stochdepth_rescale,
            transition=i == 0,
        )
        for i in range(depth)
    ]
    return nn.Sequential(*blocks)


TINY_ARGS: dict[str, Any] = {
    "slow_stem_widths": [4, 8, 8, 16],
    "fast_stem_widths": [2, 2, 4, 4],
    "slow_widths": [16, 32, 48, 48],
    "fast_widths": [4, 8, 12, 12],
    "depths": [1, 1, 1, 1],
    "slow_group_size": 8,
    "fast_group_size": 2,
    "fusion_widths": [16, 16, 32, 96],
    "fusion_time_widths": [4, 4, 8, 12],
}
"""Constructor arguments of the tiny variant (same as ``configs``' tiny encoder YAML)."""
