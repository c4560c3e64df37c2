"""MULE weights in mule-torch's safetensors layout -> :class:`~lit_mrl.models.sfnfnet.SFNFNetF0`.

The community port mule-torch (GPL-3.0; never imported here) saves its ``MuleModel``
state dict: the backbone under ``backbone.`` and its frontend's buffers under
``frontend.``. The name map below is generated from the architecture (stages, blocks,
convs), never by matching shapes or order, so a tensor can only land where its name
says::

    mule-torch (backbone.)                      SFNFNetF0
    slow_stem.convs.{i}.{weight,bias,gain}      slow_stem.{2i}.*         (GELUs between)
    fusions.{s}.conv1.* / conv2.*               fusions.{s}.time_conv.* / expand.*
    slow_stages.{s}.blocks.{b}.convs.{k}.*      slow_stages.{s}.{b}.conv{k+1}.*
    slow_stages.{s}.blocks.{b}.skip_conv.*      slow_stages.{s}.{b}.shortcut.*
    slow_stages.{s}.blocks.{b}.se.fc{1,2}.*     slow_stages.{s}.{b}.se.fc{1,2}.*
    slow_stages.{s}.blocks.{b}.skip_gain (1,)   slow_stages.{s}.{b}.skip_gain ()
    (fast_* alike)

mule-torch can also save "baked" kernels (``weight_standardization: false``): each conv's
``weight`` is then the already standardised kernel and there is no ``gain``. See
:func:`unbake` for how those become raw kernels and gains.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch
from torch import Tensor

# The released architecture as SFNFNetF0 arguments (its defaults today, written out so that
# an imported checkpoint keeps describing MULE if the defaults ever change).
MULE_ENCODER_ARGS: dict[str, Any] = {
    "in_channels": 1,
    "slow_stem_widths": [16, 32, 64, 128],
    "fast_stem_widths": [2, 4, 8, 16],
    "slow_widths": [256, 512, 1536, 1536],
    "fast_widths": [32, 64, 192, 192],
    "depths": [1, 2, 6, 3],
    "slow_group_size": 128,
    "fast_group_size": 16,
    "fusion_widths": [128, 256, 512, 3072],
    "fusion_time_widths": [32, 32, 64, 192],
    "fusion_time_kernel": 7,
    "fusion_time_stride": 4,
    "alpha": 0.2,
    "drop_path_rate": 0.1,
    "stochdepth_rescale": False,
}

# The released pipeline's frontend: MULE's log-mel, population std, 1 + T // hop frames,
# SliceExtractor window placement (docs/mule.md).
MULE_FRONTEND_ARGS: dict[str, Any] = {
    "sample_rate": 16000,
    "n_fft": 2048,
    "win_length": 400,
    "hop_length": 160,
    "n_mels": 96,
    "f_min": 0.0,
    "f_max": 8000.0,
    "standardize": True,
    "std_correction": 0,
    "final_frame": True,
    "timeline": "mule",
}

BACKBONE = "backbone."
MEL_FILTERBANK = "frontend.mel_fb"  # (n_mels, n_freqs): checked against lit_mrl's
# fixed DFT matrices of mule-torch's STFT: recomputed by lit_mrl, so only tolerated
IGNORED_TENSORS = ("frontend.stft.fwd_real", "frontend.stft.fwd_imag")
# mule-torch config.json fields that must hold MULE's values when the file has one
EXPECTED_CONFIG: dict[str, Any] = {
    "embedding_dim": 1728,
    "sample_rate": 16000,
    "n_fft": 2048,
    "hop_length": 160,
    "win_length": 400,
    "window": "hann",
    "n_mels": 96,
    "fmin": 0.0,
    "fmax": 8000.0,
    "mel_norm": 2.0,
    "htk": True,
    "power": 2.0,
    "center": True,
    "pad_mode": "reflect",
    "mag_compression": "log10_nonneg",
    "slice_hop": 200,
    "look_backward": 150,
    "look_forward": 150,
    "standard_normalize": True,
    "std_floor": 0.01,
    "alpha": 0.2,
    "scaled_activation": "gelu",
    "ws_eps": 1e-4,
}
STEM_CONVS = 4
BLOCK_CONVS = 4


class MuleImportError(ValueError):
    """A weights file that is not MULE in mule-torch's layout; the message names the tensors."""


def listing(names: Iterable[str], limit: int = 5) -> str:
    """``a, b, c, ... (N in all)``: the first few names and the count."""
    names = sorted(names)
    shown = ", ".join(names[:limit])
    return f"{shown}, ... ({len(names)} in all)" if len(names) > limit else shown


def conv_pairs(depths: Iterable[int] = (1, 2, 6, 3)) -> list[tuple[str, str]]:
    """Every WS-conv as ``(mule-torch prefix, SFNFNetF0 prefix)``, without ``backbone.``."""
    pairs = []
    for path in ("slow", "fast"):
        # the stem Sequential interleaves convs and GELUs: convs are its even entries
        pairs += [(f"{path}_stem.convs.{i}", f"{path}_stem.{2 * i}") for i in range(STEM_CONVS)]
    for s, depth in enumerate(depths):
        pairs += [(f"fusions.{s}.conv1", f"fusions.{s}.time_conv")]
        pairs += [(f"fusions.{s}.conv2", f"fusions.{s}.expand")]
        for path in ("slow", "fast"):
            for b in range(depth):
                mule, ours = f"{path}_stages.{s}.blocks.{b}", f"{path}_stages.{s}.{b}"
                pairs += [(f"{mule}.convs.{k}", f"{ours}.conv{k + 1}") for k in range(BLOCK_CONVS)]
                if b == 0:  # the first block of a stage is the transition: it has a shortcut
                    pairs += [(f"{mule}.skip_conv", f"{ours}.shortcut")]
    return pairs


def name_map(depths: Iterable[int] = (1, 2, 6, 3), gains: bool = True) -> dict[str, str]:
    """Every backbone tensor of mule-torch's layout and the SFNFNetF0 tensor it becomes.

    Args:
        depths: blocks per stage.
        gains: whether convs store a ``gain`` (raw kernels) or not (baked kernels).
    """
    depths = list(depths)
    fields = ("weight", "bias", "gain") if gains else ("weight", "bias")
    names = {
        f"{BACKBONE}{mule}.{f}": f"{ours}.{f}" for mule, ours in conv_pairs(depths) for f in fields
    }
    for s, depth in enumerate(depths):
        for path in ("slow", "fast"):
            for b in range(depth):
                mule, ours = f"{BACKBONE}{path}_stages.{s}.blocks.{b}", f"{path}_stages.{s}.{b}"
                for f in ("fc1.weight", "fc1.bias", "fc2.weight", "fc2.bias"):
                    names[f"{mule}.se.{f}"] = f"{ours}.se.{f}"
                names[f"{mule}.skip_gain"] = f"{ours}.skip_gain"
    return names


def has_gains(tensors: dict[str, Tensor]) -> bool:
    """Whether the file's convs are raw kernels with gains (else baked kernels).

    Raises:
        MuleImportError: some of the convs present have a gain and others do not.
    """
    convs = [mule for mule, _ in conv_pairs(MULE_ENCODER_ARGS["depths"])]
    present = {c for c in convs if f"{BACKBONE}{c}.weight" in tensors}
    with_gain = {c for c in present if f"{BACKBONE}{c}.gain" in tensors}
    if with_gain and with_gain != present:
        no_gain = (f"{BACKBONE}{c}.gain" for c in present - with_gain)
        raise MuleImportError(
            f"some convs store a gain and others do not (no gain: {listing(no_gain)}): "
            "neither raw nor baked kernels"
        )
    return bool(with_gain)


def unbake(kernel: Tensor, name: str, eps: float = 1e-4) -> tuple[Tensor, Tensor]:
    """Raw kernel and gain that make lit_mrl's ``WSConv2d`` compute a baked kernel ``K``.

    ``WSConv2d`` uses ``gain * (W - mean(W)) / sqrt(max(var(W) * fan_in, eps))`` per output
    channel. A baked kernel is such a result, so each channel of ``K`` has zero mean. With
    ``W = K`` and ``gain = sqrt(max(var(K) * fan_in, eps))`` the standardisation divides by
    exactly the number the gain multiplies by: the conv uses ``K`` again, to float32
    rounding (a relative 1e-7), whatever the original gain was (also negative, tiny, or
    under the ``eps`` floor). Storing ``K`` with gain 1 would be wrong for every trained
    gain other than 1, because re-standardising ``K`` gives ``K / |gain|``.

    Args:
        kernel: ``(C_out, C_in / groups, k_f, k_t)`` baked kernel ``K``.
        name: the tensor's name, for messages.
        eps: ``WSConv2d``'s floor of ``var * fan_in``.

    Returns:
        ``(W, gain)`` float32.

    Raises:
        MuleImportError: ``K`` is not a standardised kernel (channel means not zero).
    """
    k64 = kernel.double()
    fan_in = k64[0].numel()
    var, mean = torch.var_mean(k64, dim=(1, 2, 3), correction=0, keepdim=True)
    gain = torch.sqrt(torch.clamp(var * fan_in, min=eps))
    restandardised = (k64 - mean) / gain * gain  # what WSConv2d computes from (K, gain)
    change = float((restandardised - k64).abs().max() / k64.abs().max().clamp_min(1e-30))
    if change > 1e-5:  # only a kernel whose channel means are not zero moves
        raise MuleImportError(
            f"{name}: the file stores no gains, so its kernels should be weight-standardised, "
            f"but re-standardising this one changes it by {change:.3g} of its largest value "
            f"(channel means up to {float(mean.abs().max()):.3g}; a raw kernel without its gain?)"
        )
    return kernel.float(), gain.flatten().float()


def check_filterbank(tensors: dict[str, Tensor], ours: Tensor, tolerance: float = 1e-4) -> float:
    """Check the file's mel filterbank is lit_mrl's; returns the max abs difference.

    Args:
        tensors: the file's tensors.
        ours: ``(n_mels, n_freqs)`` filterbank of lit_mrl's MULE frontend.
        tolerance: largest difference accepted (filters peak near 1).

    Raises:
        MuleImportError: another shape, or values further apart than ``tolerance``.
    """
    theirs = tensors[MEL_FILTERBANK]
    if theirs.shape != ours.shape:
        raise MuleImportError(
            f"{MEL_FILTERBANK} has shape {tuple(theirs.shape)}, MULE's filterbank "
            f"{tuple(ours.shape)}: these weights expect another frontend"
        )
    diff = float((theirs.double() - ours.double()).abs().max())
    if not diff <= tolerance:
        raise MuleImportError(
            f"{MEL_FILTERBANK} differs from MULE's mel filterbank (librosa htk, norm=2) by up "
            f"to {diff:.3g}: these weights expect another frontend"
        )
    return diff


def check_config(config: dict[str, Any]) -> None:
    """Refuse a mule-torch ``config.json`` whose frontend, slicing or head is not MULE's."""
    for key, expected in EXPECTED_CONFIG.items():
        if key in config and config[key] != expected:
            raise MuleImportError(
                f"{key} is {config[key]!r}, MULE's is {expected!r}: lit_mrl imports the "
                "released MULE model only"
            )


def convert_state(tensors: dict[str, Tensor], model_state: dict[str, Tensor]) -> dict[str, Tensor]:
    """The SFNFNetF0 state dict of a mule-torch weights file.

    Args:
        tensors: every tensor of the file (backbone and frontend).
        model_state: ``SFNFNetF0(**MULE_ENCODER_ARGS).state_dict()``, for names and shapes.

    Returns:
        float32 tensors under ``model_state``'s names, all of them.

    Raises:
        MuleImportError: unknown or missing tensors (named, first few and the count), a
            shape that differs from the model's, a non-float or non-finite tensor, or
            baked kernels that are not standardised.
    """
    gains = has_gains(tensors)
    depths = MULE_ENCODER_ARGS["depths"]
    names = name_map(depths, gains)
    derived = set() if gains else {f"{ours}.gain" for _, ours in conv_pairs(depths)}
    if set(names.values()) | derived != set(model_state):  # the map is wrong: a bug, not input
        raise RuntimeError(
            f"name map does not cover {listing(set(model_state) - set(names.values()))}"
        )
    unknown = set(tensors) - {*names, MEL_FILTERBANK, *IGNORED_TENSORS}
    missing = {*names, MEL_FILTERBANK} - set(tensors)
    if unknown or missing:
        problems = [f"{len(unknown)} unknown tensors: {listing(unknown)}"] if unknown else []
        problems += [f"{len(missing)} missing tensors: {listing(missing)}"] if missing else []
        layout = "raw kernels with gains" if gains else "baked kernels without gains"
        raise MuleImportError(f"not MULE in mule-torch's layout ({layout}): {'; '.join(problems)}")
    state: dict[str, Tensor] = {}
    for theirs, ours in names.items():
        value, target = tensors[theirs], model_state[ours]
        if not value.is_floating_point():
            raise MuleImportError(f"{theirs} has dtype {value.dtype}, not floating point")
        if ours.endswith("skip_gain") and value.numel() == 1:
            value = value.reshape(target.shape)  # mule-torch stores the scalar as (1,)
        if value.shape != target.shape:
            raise MuleImportError(
                f"{theirs} has shape {tuple(value.shape)} but {ours} of SF-NFNet-F0 has "
                f"{tuple(target.shape)}"
            )
        if not torch.isfinite(value).all():
            raise MuleImportError(f"{theirs} contains NaN or Inf")
        state[ours] = value.float()
    if not gains:
        for mule, ours in conv_pairs(depths):
            name = f"{BACKBONE}{mule}.weight"
            state[f"{ours}.weight"], state[f"{ours}.gain"] = unbake(state[f"{ours}.weight"], name)
    return state
