"""Normaliser-free building blocks of the SF-NFNet encoder (Brock et al. 2021, Wang et al. 2021).

Layout is ``(B, C, F, T)`` throughout; kernel sizes and strides are written ``(freq, time)``.
Everything pads like TensorFlow's ``padding="same"``, because the released MULE model does.
"""

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

GELU_GAIN = 1.7015043497085571
"""Gain that keeps ``gelu(z)`` at unit variance for ``z ~ N(0, 1)`` (DeepMind's NFNet value)."""


def _pair(value: int | tuple[int, int] | list[int]) -> tuple[int, int]:
    if isinstance(value, int):
        return value, value
    first, second = value
    return int(first), int(second)


def same_padding(size: int, kernel: int, stride: int) -> tuple[int, int]:
    """Padding ``(before, after)`` of TensorFlow ``"same"`` along one axis.

    The output has ``ceil(size / stride)`` positions. When the total padding is odd the
    extra element goes *after* the input, which PyTorch's symmetric ``padding=`` cannot
    express::

        size 6, kernel 3, stride 2 -> total (3 - 1) * 2 + 3 - 6 = 1 -> (0, 1)
        | x0 x1 x2 x3 x4 x5 0 |   windows start at 0, 2, 4

    Args:
        size: input length along the axis.
        kernel: kernel (or pooling window) length.
        stride: stride along the axis.

    Returns:
        Zeros to add before and after the input.
    """
    total = max((math.ceil(size / stride) - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2


def avg_pool2d_same(x: Tensor, kernel: tuple[int, int], stride: tuple[int, int]) -> Tensor:
    """Average pooling with TensorFlow ``"same"`` padding (padded zeros are not counted).

    Args:
        x: ``(B, C, F, T)`` feature map.
        kernel: pooling window ``(freq, time)``.
        stride: pooling stride ``(freq, time)``.

    Returns:
        ``(B, C, ceil(F / stride_f), ceil(T / stride_t))`` averages over the valid cells.
    """
    pad_f = same_padding(x.shape[-2], kernel[0], stride[0])
    pad_t = same_padding(x.shape[-1], kernel[1], stride[1])
    if pad_f == (0, 0) and pad_t == (0, 0):
        return F.avg_pool2d(x, kernel, stride)
    pads = (*pad_t, *pad_f)  # F.pad wants the last axis first
    summed = F.avg_pool2d(F.pad(x, pads), kernel, stride, divisor_override=1)
    # Count of real (unpadded) cells under each window: pool a (1, 1, F, T) mask of ones.
    ones = x.new_ones((1, 1, x.shape[-2], x.shape[-1]))
    count = F.avg_pool2d(F.pad(ones, pads), kernel, stride, divisor_override=1)
    return summed / count


class WSConv2d(nn.Conv2d):
    """Scaled weight-standardised 2-D convolution with TF ``"same"`` padding.

    The kernel used is ``gain * (W - mean) / sqrt(max(var * fan_in, eps))``, with mean and
    (biased) variance per output channel over ``(C_in / groups, k_f, k_t)`` and
    ``fan_in = C_in / groups * k_f * k_t``, so each output channel's kernel has zero mean and
    variance ``gain**2 / fan_in``. The standardisation runs in float32 and is then cast to
    the weight's dtype; under ``torch.autocast`` the convolution itself runs in the
    autocast dtype (bf16 safe).

    Init as Keras ``VarianceScaling(1.0, "fan_in", "untruncated_normal")``, bias 0, gain 1.

    Args:
        in_channels: input channels ``C_in``.
        out_channels: output channels ``C_out``.
        kernel_size: ``(freq, time)`` kernel, or one int for both.
        stride: ``(freq, time)`` stride, or one int for both.
        groups: channel groups of a grouped convolution.
        eps: floor of ``var * fan_in``.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int | tuple[int, int] = 1,
        stride: int | tuple[int, int] = 1,
        groups: int = 1,
        eps: float = 1e-4,
    ) -> None:
        super().__init__(
            in_channels, out_channels, _pair(kernel_size), _pair(stride), groups=groups, bias=True
        )
        self.gain = nn.Parameter(torch.ones(out_channels))
        self.eps = eps
        self.fan_in = (in_channels // groups) * self.kernel_size[0] * self.kernel_size[1]
        nn.init.normal_(self.weight, std=self.fan_in**-0.5)
        nn.init.zeros_(self.bias)

    def standardized_weight(self) -> Tensor:
        """Return the standardised kernel, ``(C_out, C_in / groups, k_f, k_t)``."""
        weight = self.weight.float()
        var, mean = torch.var_mean(weight, dim=(1, 2, 3), correction=0, keepdim=True)
        scale = torch.rsqrt(torch.clamp(var * self.fan_in, min=self.eps))
        scale = scale * self.gain.float().view(-1, 1, 1, 1)
        return (weight * scale - mean * scale).to(self.weight.dtype)

    def forward(self, x: Tensor) -> Tensor:
        """Convolve ``(B, C_in, F, T)`` to ``(B, C_out, ceil(F / s_f), ceil(T / s_t))``."""
        pad_f = same_padding(x.shape[-2], self.kernel_size[0], self.stride[0])
        pad_t = same_padding(x.shape[-1], self.kernel_size[1], self.stride[1])
        if pad_f[0] == pad_f[1] and pad_t[0] == pad_t[1]:
            # Symmetric: let the convolution pad (no extra copy of the input).
            padding = (pad_f[0], pad_t[0])
        else:
            x = F.pad(x, (*pad_t, *pad_f))
            padding = (0, 0)
        weight = self.standardized_weight()
        return F.conv2d(x, weight, self.bias, self.stride, padding, 1, self.groups)


class ScaledGELU(nn.Module):
    """Exact (erf) GELU times :data:`GELU_GAIN`, a variance-preserving activation."""

    def forward(self, x: Tensor) -> Tensor:
        return F.gelu(x) * GELU_GAIN


class SqueezeExcite(nn.Module):
    """Squeeze-excite with NFNet's ``2 * sigmoid`` gate.

    GAP over ``(F, T)`` -> Linear(hidden) -> ReLU -> Linear(channels) -> sigmoid, and the
    input is multiplied by twice the gate, so a neutral gate (0.5) leaves it unchanged.
    Linear layers use Keras ``Dense`` defaults: Glorot-uniform weights, zero bias.

    Args:
        channels: channels of the gated feature map.
        hidden: width of the bottleneck layer.
    """

    def __init__(self, channels: int, hidden: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(channels, hidden)
        self.fc2 = nn.Linear(hidden, channels)
        for fc in (self.fc1, self.fc2):
            nn.init.xavier_uniform_(fc.weight)
            nn.init.zeros_(fc.bias)

    def forward(self, x: Tensor) -> Tensor:
        """Gate ``(B, C, F, T)`` per channel; returns the same shape."""
        gate = torch.sigmoid(self.fc2(F.relu(self.fc1(x.mean(dim=(2, 3))))))  # (B, C)
        return x * (2.0 * gate)[:, :, None, None]


class StochasticDepth(nn.Module):
    """Per-example residual-branch dropout (Huang et al. 2016).

    In training each example's branch is kept with probability ``1 - drop_rate``. The
    original MULE/Keras layer does not rescale kept branches and adds the branch unscaled
    at test time; ``rescale=True`` gives the "inverted" form (kept branches divided by the
    survival probability) used by timm and DeepMind's NFNets. Evaluation is the identity in
    both cases.

    Args:
        drop_rate: probability of dropping the branch of one example.
        rescale: divide kept branches by ``1 - drop_rate`` during training.
    """

    def __init__(self, drop_rate: float = 0.0, rescale: bool = False) -> None:
        super().__init__()
        if not 0.0 <= drop_rate < 1.0:
            raise ValueError(f"drop_rate must be in [0, 1), got {drop_rate}")
        self.drop_rate = drop_rate
        self.rescale = rescale

    def forward(self, x: Tensor) -> Tensor:
        """Mask ``(B, ...)`` with one Bernoulli draw per example; same shape out."""
        if not self.training or self.drop_rate == 0.0:
            return x
        keep = 1.0 - self.drop_rate
        mask = x.new_empty((x.shape[0],) + (1,) * (x.ndim - 1)).bernoulli_(keep)
        if self.rescale:
            mask = mask / keep
        return x * mask

    def extra_repr(self) -> str:
        return f"drop_rate={self.drop_rate:.4f}, rescale={self.rescale}"


class NFBlock(nn.Module):
    """NFNet bottleneck block as in MULE's SF-NFNet-F0.

    Residual branch: 1x1 -> ``out/2``; ``(1, 3)`` over time, grouped, stride
    ``(freq_stride, 1)``; ``(3, 1)`` over frequency, grouped; 1x1 -> ``out``; scaled GELU
    after each conv but the last; squeeze-excite; a learnable scalar "skip-init" gain
    (init 0); times ``alpha``; stochastic depth.

    A transition block (the first of a stage) applies ``act(x) * beta`` once and feeds both
    branches from it; its shortcut is ``AvgPool(freq_stride, 1)`` (when ``freq_stride > 1``)
    then a linear 1x1 WS-conv. Other blocks keep the raw input as the shortcut and apply
    ``act(x) * beta`` on the residual branch only.

    Args:
        in_channels: input channels.
        out_channels: output channels (the bottleneck is ``out_channels // 2``).
        group_size: channels per group in the two spatial convs.
        beta: ``1 / expected std`` of the input, multiplied after the input activation.
        alpha: scale of the residual branch (variance added per block is ``alpha**2``).
        freq_stride: frequency down-sampling factor of this block.
        drop_rate: stochastic-depth drop probability of the residual branch.
        stochdepth_rescale: use inverted (rescaled) stochastic depth.
        transition: build a transition block (forced for the first block of a stage).
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        group_size: int,
        beta: float = 1.0,
        alpha: float = 0.2,
        freq_stride: int = 1,
        drop_rate: float = 0.0,
        stochdepth_rescale: bool = False,
        transition: bool = False,
    ) -> None:
        super().__init__()
        mid = out_channels // 2
        if mid % group_size:
            raise ValueError(
                f"bottleneck width {mid} (out_channels {out_channels} // 2) is not a multiple "
                f"of group_size {group_size}"
            )
        self.transition = transition or freq_stride > 1 or in_channels != out_channels
        self.beta = beta
        self.alpha = alpha
        self.freq_stride = freq_stride
        groups = mid // group_size
        self.act = ScaledGELU()
        self.conv1 = WSConv2d(in_channels, mid, 1)
        self.conv2 = WSConv2d(mid, mid, (1, 3), stride=(freq_stride, 1), groups=groups)
        self.conv3 = WSConv2d(mid, mid, (3, 1), groups=groups)
        self.conv4 = WSConv2d(mid, out_channels, 1)
        self.se = SqueezeExcite(out_channels, out_channels // 2)
        self.skip_gain = nn.Parameter(torch.zeros(()))
        self.shortcut = WSConv2d(in_channels, out_channels, 1) if self.transition else None
        self.drop_path = StochasticDepth(drop_rate, stochdepth_rescale)

    def forward(self, x: Tensor) -> Tensor:
        """Map ``(B, C_in, F, T)`` to ``(B, C_out, ceil(F / freq_stride), T)``."""
        if self.shortcut is not None:
            x = self.act(x) * self.beta
            skip = x
            if self.freq_stride > 1:
                skip = avg_pool2d_same(skip, (self.freq_stride, 1), (self.freq_stride, 1))
            skip = self.shortcut(skip)
            out = x
        else:
            skip = x
            out = self.act(x) * self.beta
        out = self.act(self.conv1(out))
        out = self.act(self.conv2(out))
        out = self.act(self.conv3(out))
        out = self.se(self.conv4(out))
        out = out * (self.skip_gain * self.alpha)
        return skip + self.drop_path(out)
