"""``python -m lit_mrl import_mule``: the released MULE weights as a lit_mrl checkpoint.

Reads MULE in the safetensors layout of the community port mule-torch (``model.safetensors``,
with its ``config.json`` beside it when there is one), maps every tensor by name onto
:class:`~lit_mrl.models.sfnfnet.SFNFNetF0` (:mod:`lit_mrl.mule.mapping`) and writes a
checkpoint that :func:`lit_mrl.checkpoints.load_pretrained` rebuilds as a
:class:`~lit_mrl.methods.ContrastiveModule` (MULE is SimCLR) with the MULE frontend and
timeline, so ``embed``, ``probe``, ``make eval``, the HEAR module and ``fit``'s
``init_weights`` take it like any other checkpoint. The file holds tensors and plain
types only (``torch.load(weights_only=True)``). The weights are CC BY-NC 4.0.

The official ``model.keras`` (TensorFlow) is not read: convert it once with mule-torch's
``scripts/convert.py`` (see ``docs/mule.md``).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from lit_mrl.errors import UsageError

WEIGHTS_NAME = "model.safetensors"  # mule-torch's file name inside a model folder
CONFIG_NAME = "config.json"
MAX_CONFIG_BYTES = 1 << 20  # mule-torch's is about 1 kB
PROJECTOR_NOTE = (
    "untrained: MULE's projector (3 x 4096 ReLU) was not released; this one is the "
    "smallest ProjectionHead (no hidden layer, 1 output), seeded, for the module to load"
)


def import_mule(source: str | list[str], out: str, overwrite: bool = False) -> int:
    """Turn the released MULE weights (mule-torch safetensors) into a lit_mrl checkpoint.

    Args:
        source: mule-torch's model.safetensors, or a folder holding it (and config.json).
        out: the .ckpt to write.
        overwrite: replace an existing --out.

    Returns:
        0 (errors raise).
    """
    import torch

    from lit_mrl.mule.mapping import MuleImportError, check_config

    if not isinstance(source, str):  # the command line passes positionals as a list
        if len(source) != 1:
            raise UsageError(f"give one weights file, got {len(source)}: {' '.join(source)}")
        source = source[0]
    weights, config_path = locate(source)
    target = Path(out)
    if target.exists() and not overwrite:
        raise UsageError(f"{target} exists: use another --out, or --overwrite")
    if config_path is not None:
        try:
            check_config(read_config(config_path))
        except MuleImportError as err:
            raise MuleImportError(f"{config_path}: {err}") from err
    tensors = read_safetensors(weights)
    try:
        module, notes = build_module(tensors)
    except MuleImportError as err:
        raise MuleImportError(f"{weights}: {err}") from err
    state = {k: v.detach().contiguous() for k, v in module.state_dict().items()}
    checkpoint = {
        "state_dict": state,
        "hyper_parameters": hyper_parameters(),
        "pytorch-lightning_version": _lightning_version(),
        "source": source_note(weights, notes),
    }
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(target.name + ".partial")
    torch.save(checkpoint, partial)
    partial.replace(target)  # never a half-written checkpoint under the final name
    count = sum(p.numel() for p in module.audio_encoder.parameters())
    print(
        f"MULE SF-NFNet-F0: {count:,} parameters, embed_dim {module.audio_encoder.embed_dim} "
        f"({notes['kernels']}; mel filterbank within {notes['filterbank_max_abs_diff']:.1e})"
    )
    print(f"wrote {target} (weights CC BY-NC 4.0: non-commercial use only; projector untrained)")
    return 0


def locate(source: str) -> tuple[Path, Path | None]:
    """The weights file ``source`` names, and mule-torch's ``config.json`` beside it if any.

    Raises:
        UsageError: nothing there, or a Keras file.
    """
    path = Path(source)
    if path.is_dir():
        path = path / WEIGHTS_NAME
    if path.suffix in (".keras", ".h5"):
        raise UsageError(
            f"{path} is the official Keras model: lit_mrl reads the safetensors of the "
            "mule-torch port; convert once with its scripts/convert.py (see docs/mule.md)"
        )
    if not path.is_file():
        raise UsageError(f"{path} not found (give mule-torch's {WEIGHTS_NAME} or its folder)")
    config = path.with_name(CONFIG_NAME)
    return path, config if config.is_file() else None


def read_config(path: Path) -> dict[str, Any]:
    """mule-torch's ``config.json`` as a dict.

    Raises:
        UsageError: naming the file: larger than a config (:data:`MAX_CONFIG_BYTES`),
            not UTF-8 JSON, nested too deeply to parse, or not an object.
    """
    size = path.stat().st_size
    if size > MAX_CONFIG_BYTES:
        raise UsageError(
            f"{path} is {size:,} bytes, not a config.json (those are under "
            f"{MAX_CONFIG_BYTES:,} bytes)"
        )
    try:
        config = json.loads(path.read_bytes().decode("utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise UsageError(f"{path} is not JSON: {err}") from err
    except RecursionError as err:  # e.g. [[[[...]]]] 100000 deep
        raise UsageError(f"{path} nests too deeply to be a config.json") from err
    if not isinstance(config, dict):
        raise UsageError(f"{path} is not a JSON object (it holds a {type(config).__name__})")
    return config


def read_safetensors(path: Path) -> dict[str, Any]:
    """Every tensor of a safetensors file (no pickle: the format holds raw tensors only)."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        return load_file(str(path))
    except (SafetensorError, OSError, RuntimeError) as err:
        raise UsageError(f"{path} is not a readable safetensors file: {err}") from err


def build_module(tensors: dict[str, Any]) -> tuple[Any, dict]:
    """The ContrastiveModule holding the file's weights, and notes on the conversion."""
    import torch

    from lit_mrl.methods.contrastive import ContrastiveModule
    from lit_mrl.models.frontend import LogMelSpectrogram
    from lit_mrl.models.sfnfnet import SFNFNetF0
    from lit_mrl.mule.mapping import (
        MULE_ENCODER_ARGS,
        MULE_FRONTEND_ARGS,
        check_filterbank,
        convert_state,
        has_gains,
    )

    frontend = LogMelSpectrogram(**MULE_FRONTEND_ARGS)
    with torch.random.fork_rng():  # a seeded, reproducible file; the caller's RNG untouched
        torch.manual_seed(0)
        module = ContrastiveModule(
            SFNFNetF0(**MULE_ENCODER_ARGS), projection_dim=1, projector_dims=[], frontend=frontend
        )
    encoder = module.audio_encoder.encoder
    encoder.load_state_dict(convert_state(tensors, encoder.state_dict()))  # names every problem
    diff = check_filterbank(tensors, frontend.mel_fbank.T)
    notes = {
        "kernels": "raw kernels and gains"
        if has_gains(tensors)
        else "baked kernels, stored with the gains that reproduce them",
        "filterbank_max_abs_diff": diff,
    }
    return module, notes


def hyper_parameters() -> dict[str, Any]:
    """What :func:`~lit_mrl.checkpoints.load_pretrained` rebuilds the module from."""
    from lit_mrl.mule.mapping import MULE_ENCODER_ARGS, MULE_FRONTEND_ARGS

    return {
        "_class_path": "lit_mrl.methods.ContrastiveModule",
        "_instantiator": "lightning.pytorch.cli.instantiate_module",
        "encoder": {
            "class_path": "lit_mrl.models.sfnfnet.SFNFNetF0",
            "init_args": MULE_ENCODER_ARGS,
        },
        "projection_dim": 1,
        "projector_dims": [],
        "temperature": 0.1,
        "sample_rate": MULE_FRONTEND_ARGS["sample_rate"],
        "frontend": {
            "class_path": "lit_mrl.models.frontend.LogMelSpectrogram",
            "init_args": MULE_FRONTEND_ARGS,
        },
    }


def source_note(weights: Path, notes: dict[str, Any]) -> dict[str, Any]:
    """Provenance stored beside the weights (``hyper_parameters`` may only hold init args)."""
    from lit_mrl import __version__
    from lit_mrl.embed.models import file_digest

    return {
        "model": "MULE (Musicset ULarge), McCallum et al., ISMIR 2022, arXiv:2210.03799",
        "release": "https://github.com/PandoraMedia/music-audio-representations",
        "weights_file": weights.name,
        "weights_sha256": file_digest([weights]),
        "weights_license": "CC BY-NC 4.0 (non-commercial use only)",
        "projector": PROJECTOR_NOTE,
        "kernels": notes["kernels"],
        "imported_by": f"lit_mrl {__version__} import_mule",
    }


def _lightning_version() -> str:
    import lightning

    return lightning.__version__
