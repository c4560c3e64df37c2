"""The audio encoder ``embed`` runs: from a checkpoint, random weights, or a model file.

Each way also yields a fingerprint of the weights (a hash of the checkpoint's bytes, or
of the config files and seed that make the untrained weights), which ``embed`` stores in
``index.json`` so a rerun with other weights never mixes its embeddings with old ones.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import torch
import yaml

from lit_mrl.errors import UsageError
from lit_mrl.models.audio_encoder import AudioEncoder


def file_digest(paths: list[Path], extra: str = "") -> str:
    """sha256 over the bytes of ``paths`` (in order) and ``extra``, hex."""
    digest = hashlib.sha256()
    for path in paths:
        with open(path, "rb") as file:
            for block in iter(lambda f=file: f.read(1 << 20), b""):
                digest.update(block)
    digest.update(extra.encode())
    return digest.hexdigest()


def read_yaml(path: Path) -> Any:
    """A YAML file's value, read safely (no ``!!python`` tags).

    Raises:
        UsageError: naming the file, if it is not valid YAML.
    """
    try:
        return yaml.safe_load(path.read_text())
    except yaml.YAMLError as err:
        raise UsageError(f"{path}: not valid YAML ({' '.join(str(err).split())[:300]})") from err
    except UnicodeDecodeError as err:
        raise UsageError(f"{path}: not a text file ({err})") from err


def _existing(paths: list[str], what: str) -> list[Path]:
    files = [Path(p) for p in paths]
    for path in files:
        if not path.is_file():
            raise UsageError(f"{what} {path} not found")
    return files


def from_checkpoint(path: str, allowed_classes: list[str]) -> tuple[AudioEncoder, dict[str, Any]]:
    """The audio encoder of a trained checkpoint or an exported encoder folder (checked)."""
    from lit_mrl.checkpoints import load_audio_encoder

    file = Path(path)
    if not file.exists():
        raise UsageError(f"checkpoint {file} not found")
    return load_audio_encoder(file, allowed_classes)


def from_training_configs(
    configs: list[str], seed: int, allowed_classes: list[str] = ()
) -> tuple[AudioEncoder, dict[str, Any]]:
    """The audio encoder of training configs' ``model``, with fresh random weights.

    Only the ``model`` section of each YAML is read (later files override earlier ones,
    as with ``fit -c a.yaml -c b.yaml``); nothing is trained. A ``num_tags`` left unset
    is set to 2 (the head does not change the embeddings). The classes a file names are
    checked like a checkpoint's (:mod:`lit_mrl.trust`) before anything is imported.
    """
    from jsonargparse import ActionConfigFile, ArgumentParser
    from lightning import LightningModule

    import lit_mrl.methods  # noqa: F401  (short class names resolve)
    from lit_mrl.checkpoints import build_checked
    from lit_mrl.trust import check_config, check_value

    files = _existing(configs, "config")
    parser = ArgumentParser(exit_on_error=False)
    parser.add_argument("--config", action=ActionConfigFile)
    parser.add_subclass_arguments(LightningModule, "model", required=True)
    args, class_path = [], None
    for path in files:
        content = read_yaml(path) or {}
        if not isinstance(content, dict):
            raise UsageError(f"{path}: expected a mapping (a training config)")
        if "model" not in content:
            continue
        section = content["model"]
        if isinstance(section, dict) and isinstance(section.get("class_path"), str):
            class_path = section["class_path"]
        if class_path is not None and isinstance(section, dict):  # checked before import
            rest = {k: v for k, v in section.items() if k not in ("class_path", "init_args")}
            check_config(class_path, section.get("init_args") or {}, path, allowed_classes,
                         base=LightningModule, where="model.init_args", what="a training config",
                         class_field="model.class_path")  # fmt: skip
            check_value(rest, Any, path, allowed_classes, "model", "a training config")
        else:
            check_value(section, Any, path, allowed_classes, "model", "a training config")
        args += ["--config", yaml.safe_dump({"model": section})]
    if not args:
        raise UsageError(f"no 'model' section in {', '.join(map(str, files))}")

    def build() -> Any:
        parsed = parser.parse_args(args)
        init_args = parsed.model.init_args
        if "num_tags" in init_args and init_args.num_tags is None:
            init_args.num_tags = 2
        torch.manual_seed(seed)
        return parser.instantiate_classes(parsed).model

    module = build_checked(build, ", ".join(map(str, files)))
    source = {
        "random_init": [str(p.resolve()) for p in files],
        "seed": seed,
        "fingerprint": file_digest(files, f"random_init seed={seed}"),
    }
    return module.audio_encoder, source


AUDIO_ENCODER_PATHS = ("lit_mrl.models.AudioEncoder", "lit_mrl.models.audio_encoder.AudioEncoder")


def from_model_file(
    path: str, seed: int, allowed_classes: list[str]
) -> tuple[AudioEncoder, dict[str, Any]]:
    """An :class:`AudioEncoder` described by a YAML file, with weights from ``seed``.

    For encoders that need no training (``lit_mrl.models.LogMelStats``) or random
    weights of any encoder; the file holds the AudioEncoder's arguments, with or without
    its ``class_path``::

        class_path: lit_mrl.models.AudioEncoder
        init_args:
          encoder:
            class_path: lit_mrl.models.LogMelStats

    Every class it names is checked as a checkpoint's would be (lit_mrl, torch.nn, or
    ``allowed_classes``) before anything is imported.

    Raises:
        UsageError: the file is missing, not a mapping, or names another class.
    """
    from lit_mrl.models.export import build_audio_encoder

    (file,) = _existing([path], "model file")
    content = read_yaml(file) or {}
    if not isinstance(content, dict):
        raise UsageError(f"{file}: expected a mapping of AudioEncoder arguments")
    where = ""
    if "class_path" in content:
        if content["class_path"] not in AUDIO_ENCODER_PATHS:
            raise UsageError(
                f"{file}: class_path is {content['class_path']!r}; a model file describes a "
                f"{AUDIO_ENCODER_PATHS[0]}"
            )
        unknown = sorted(set(content) - {"class_path", "init_args"})
        if unknown:
            raise UsageError(
                f"{file}: {unknown[0]} is not a key of a model file (class_path, init_args)"
            )
        content, where = content.get("init_args") or {}, "init_args"
    torch.manual_seed(seed)
    audio_encoder = build_audio_encoder(content, file, allowed_classes, "a model file", where)
    source = {
        "model_file": str(file.resolve()),
        "seed": seed,
        "fingerprint": file_digest([file], f"model seed={seed}"),
    }
    return audio_encoder, source


def load_audio_encoder(
    checkpoint: str | None,
    random_init: list[str] | None,
    model: str | None,
    seed: int,
    allowed_classes: list[str],
) -> tuple[AudioEncoder, dict[str, Any]]:
    """The encoder one of the three options names, and its source description.

    Raises:
        UsageError: not exactly one of the options is given, or a file is missing.
    """
    given = [name for name, v in (("checkpoint", checkpoint), ("random_init", random_init),
                                  ("model", model)) if v]  # fmt: skip
    if len(given) != 1:
        raise UsageError(
            "give exactly one of --checkpoint, --random_init and --model"
            + (f" (got {', '.join('--' + g for g in given)})" if given else "")
        )
    if checkpoint:
        audio_encoder, source = from_checkpoint(checkpoint, allowed_classes)
    elif random_init:
        audio_encoder, source = from_training_configs(random_init, seed, allowed_classes)
    else:
        audio_encoder, source = from_model_file(model, seed, allowed_classes)
    source["encoder_class"] = audio_encoder.encoder_class
    return audio_encoder.eval(), source
