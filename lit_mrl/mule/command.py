"""``python -m lit_mrl import_mule``: the released MULE weights as a lit_mrl encoder folder.

Reads MULE in the safetensors layout of the community port mule-torch (``model.safetensors``,
with its ``config.json`` beside it when there is one), maps every tensor by name onto
:class:`~lit_mrl.models.sfnfnet.SFNFNetF0` (:mod:`lit_mrl.mule.mapping`) and writes an
encoder artifact (:mod:`lit_mrl.models.export`: ``config.json`` + ``model.safetensors`` +
model card) of an :class:`~lit_mrl.models.AudioEncoder` with the MULE frontend and
timeline, so ``embed``, ``probe``, ``make eval``, the HEAR module,
``AudioEncoder.from_pretrained`` and ``fit``'s ``init_weights`` take it. There is no
projector: MULE's was not released, and an encoder artifact holds none. The weights are
CC BY-NC 4.0.

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
PROJECTOR_NOTE = "not included: MULE's projector (3 x 4096 ReLU) was not released"


def import_mule(source: str | list[str], out: str, overwrite: bool = False) -> int:
    """Turn the released MULE weights (mule-torch safetensors) into a lit_mrl encoder folder.

    Args:
        source: mule-torch's model.safetensors, or a folder holding it (and config.json).
        out: the encoder folder to write (config.json, model.safetensors, README.md).
        overwrite: replace an existing --out.

    Returns:
        0 (errors raise).
    """
    from lit_mrl.models.export import write_artifact
    from lit_mrl.mule.mapping import MuleImportError, check_config

    if not isinstance(source, str):  # the command line passes positionals as a list
        if len(source) != 1:
            raise UsageError(f"give one weights file, got {len(source)}: {' '.join(source)}")
        source = source[0]
    weights, config_path = locate(source)
    target = Path(out)
    if target.suffix == ".ckpt":
        raise UsageError(
            f"--out {target}: import_mule writes an encoder folder (config.json + "
            "model.safetensors), which every command takes where it takes a checkpoint; "
            "give a folder name, e.g. --out mule"
        )
    if target.exists() and not overwrite:
        raise UsageError(f"{target} exists: use another --out, or --overwrite")
    if config_path is not None:
        try:
            check_config(read_config(config_path))
        except MuleImportError as err:
            raise MuleImportError(f"{config_path}: {err}") from err
    tensors = read_safetensors(weights)
    try:
        audio_encoder, notes = build_encoder(tensors)
    except MuleImportError as err:
        raise MuleImportError(f"{weights}: {err}") from err
    provenance = {"name": "MULE (Musicset ULarge)", **source_note(weights, notes)}
    provenance["license"] = "cc-by-nc-4.0"
    write_artifact(audio_encoder, target, provenance, overwrite=overwrite)
    count = sum(p.numel() for p in audio_encoder.encoder.parameters())
    print(
        f"MULE SF-NFNet-F0: {count:,} parameters, embed_dim {audio_encoder.embed_dim} "
        f"({notes['kernels']}; mel filterbank within {notes['filterbank_max_abs_diff']:.1e})"
    )
    print(f"wrote {target}/ (weights CC BY-NC 4.0: non-commercial use only)")
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


def build_encoder(tensors: dict[str, Any]) -> tuple[Any, dict]:
    """The MULE :class:`~lit_mrl.models.AudioEncoder` holding the file's weights, and notes."""
    from lit_mrl.models.audio_encoder import AudioEncoder
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
    audio_encoder = AudioEncoder(SFNFNetF0(**MULE_ENCODER_ARGS), frontend)
    audio_encoder.spec = {
        "encoder": {
            "class_path": "lit_mrl.models.sfnfnet.SFNFNetF0",
            "init_args": MULE_ENCODER_ARGS,
        },
        "frontend": {
            "class_path": "lit_mrl.models.frontend.LogMelSpectrogram",
            "init_args": MULE_FRONTEND_ARGS,
        },
    }
    encoder = audio_encoder.encoder
    encoder.load_state_dict(convert_state(tensors, encoder.state_dict()))  # names every problem
    diff = check_filterbank(tensors, frontend.mel_fbank.T)
    notes = {
        "kernels": "raw kernels and gains"
        if has_gains(tensors)
        else "baked kernels, stored with the gains that reproduce them",
        "filterbank_max_abs_diff": diff,
    }
    return audio_encoder.eval(), notes


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
