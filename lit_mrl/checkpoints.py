"""Loading trained modules back from Lightning checkpoints, safely.

A checkpoint is untrusted input: people download them. ``torch.load(weights_only=True)``
stops pickles, but a Lightning CLI checkpoint also names the classes that rebuild its
module (``hyper_parameters["_class_path"]``, every nested ``class_path``, and bare dotted
strings in class-typed arguments). Building an arbitrary class runs arbitrary code, and
so can importing an arbitrary module. So everything a checkpoint asks to build is
checked by :func:`lit_mrl.trust.check_config` *before* anything is imported or built,
and its tensors must match the rebuilt module's names and shapes.
"""

from __future__ import annotations

import hashlib
import io
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from lightning import LightningModule
from lightning.pytorch.cli import instantiate_module

from lit_mrl.models.audio_encoder import AudioEncoder
from lit_mrl.trust import UntrustedCheckpointError, check_config, import_class

__all__ = [
    "UntrustedCheckpointError",
    "check_state_dict",
    "import_class",
    "load_audio_encoder",
    "load_pretrained",
    "read_checkpoint",
]


def read_checkpoint(
    path: str | Path, map_location: str | torch.device = "cpu", data: bytes | None = None
) -> dict[str, Any]:
    """A checkpoint file's contents, read as tensors and plain values only (no pickled code).

    Args:
        path: the file (named in messages).
        map_location: device for the tensors.
        data: the file's bytes, when already read (then ``path`` is not opened).

    Raises:
        FileNotFoundError: ``path`` does not exist.
        ValueError: naming the file, if it is not a readable checkpoint, or has no
            ``state_dict`` of tensors.
    """
    path = Path(path)
    if data is None and not path.is_file():
        raise FileNotFoundError(f"checkpoint {path} not found")
    try:
        source = path if data is None else io.BytesIO(data)
        ckpt = torch.load(source, map_location=map_location, weights_only=True)
    except Exception as err:  # a truncated file, a pickle with code, not a checkpoint
        reason = " ".join(str(err).split())
        if "weights_only" in reason or "Unsupported global" in reason:
            reason = "it holds pickled Python objects, which lit_mrl never unpickles"
        raise ValueError(f"{path} is not a readable checkpoint: {reason[:300]}") from err
    state = ckpt.get("state_dict") if isinstance(ckpt, dict) else None
    if not isinstance(state, dict):
        raise ValueError(f"{path} is not a Lightning checkpoint (no state_dict)")
    for name, value in state.items():
        if not isinstance(value, torch.Tensor):
            raise ValueError(f"{path}: state_dict.{name} is not a tensor")
    return ckpt


def check_state_dict(
    state: dict[str, torch.Tensor],
    expected: dict[str, torch.Tensor],
    source: str | Path,
    prefix: str = "",
) -> None:
    """Refuse a state dict whose tensor names, shapes or values do not fit ``expected``.

    ``prefix`` is what the file's tensor names start with beyond ``state``'s (messages
    name the tensors as the file does).

    Raises:
        ValueError: naming the file and the first tensors missing, unexpected, of another
            shape, or holding NaN/Inf.
    """
    for what, names in (
        ("lacks the model's tensors", set(expected) - set(state)),
        ("has tensors the model does not", set(state) - set(expected)),
    ):
        if names:
            shown = ", ".join(prefix + n for n in sorted(names)[:3])
            more = f", ... ({len(names)} in all)" if len(names) > 3 else ""
            raise ValueError(
                f"{source}: state_dict {what}: {shown}{more} (another model or encoder?)"
            )
    for name, value in state.items():
        if value.shape != expected[name].shape:
            raise ValueError(
                f"{source}: state_dict.{prefix}{name} has shape {tuple(value.shape)}, the model "
                f"expects {tuple(expected[name].shape)}"
            )
        if value.is_floating_point() and not bool(torch.isfinite(value).all()):
            bad = int((~torch.isfinite(value)).sum())
            raise ValueError(f"{source}: state_dict.{prefix}{name} holds {bad} NaN/Inf values")


def load_pretrained(
    path: str | Path,
    map_location: str | torch.device = "cpu",
    allowed_classes: Sequence[str] = (),
) -> LightningModule:
    """Rebuild a module trained through ``python -m lit_mrl fit`` and load its weights.

    The checkpoint is read with ``weights_only=True`` (no arbitrary unpickling), every
    class it names is checked (see :func:`lit_mrl.trust.check_config`), then the module and its
    encoder are rebuilt from the ``class_path``/``init_args`` the CLI stored.

    Args:
        path: a ``.ckpt`` file.
        map_location: device for the weights.
        allowed_classes: class paths outside lit_mrl and torch that you trust this
            checkpoint to build (e.g. your own encoder).

    Returns:
        The module in eval mode.

    Raises:
        FileNotFoundError: ``path`` does not exist.
        ValueError: the file is not a readable checkpoint, was not written by a CLI run,
            or names a class that is not trusted (:class:`UntrustedCheckpointError`).
    """
    path = Path(path)
    ckpt = read_checkpoint(path, map_location)
    cls, hparams = _checked_module(ckpt, path, allowed_classes)
    module = build_checked(lambda: instantiate_module(cls, hparams), path)
    check_state_dict(ckpt["state_dict"], module.state_dict(), path)
    module.load_state_dict(ckpt["state_dict"])
    return module.eval()


def _checked_module(
    ckpt: dict[str, Any], path: Path, allowed_classes: Sequence[str]
) -> tuple[type, dict[str, Any]]:
    """The module class and arguments a checkpoint stores, every class in them checked."""
    hparams = ckpt.get("hyper_parameters") or {}
    if not isinstance(hparams, dict):
        raise ValueError(f"{path}: hyper_parameters is not a mapping")
    hparams = dict(hparams)
    class_path = hparams.pop("_class_path", None)
    hparams.pop("_instantiator", None)
    if class_path is None:
        raise ValueError(
            f"{path} stores no module class path: train through `python -m lit_mrl fit` "
            "so the checkpoint records how to rebuild its model"
        )
    return check_config(class_path, hparams, path, allowed_classes, base=LightningModule), hparams


def load_audio_encoder(
    path: str | Path,
    allowed_classes: Sequence[str] = (),
    map_location: str | torch.device = "cpu",
) -> tuple[AudioEncoder, dict[str, Any]]:
    """The audio encoder of a training checkpoint or of an exported encoder folder.

    A checkpoint is read once (its sha256 is taken from the same bytes) and only its
    ``AudioEncoder`` is built (no projector, no optimizer); an artifact folder
    (:mod:`lit_mrl.models.export`) is read as it is. Either way every class named is
    checked first (:mod:`lit_mrl.trust`) and the tensors must fit.

    Returns:
        The encoder in eval mode, and what made it: ``checkpoint`` or ``artifact`` (the
        resolved path), ``fingerprint`` (sha256 of the file, or of the artifact's files).

    Raises:
        FileNotFoundError: ``path`` does not exist.
        ValueError: naming the file and field (see :func:`load_pretrained`).
    """
    from lit_mrl.methods.base import PretrainModule
    from lit_mrl.models.export import (
        audio_encoder_args,
        build_audio_encoder,
        is_artifact,
        read_artifact,
    )

    path = Path(path)
    if path.is_dir():
        if not is_artifact(path):
            raise FileNotFoundError(f"{path} is a folder without an encoder's config.json")
        artifact = read_artifact(path, allowed_classes, map_location)
        return artifact.audio_encoder, {"artifact": str(path.resolve()),
                                        "fingerprint": artifact.fingerprint}  # fmt: skip
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {path} not found")
    data = path.read_bytes()
    ckpt = read_checkpoint(path, map_location, data)
    source = {"checkpoint": str(path.resolve()), "fingerprint": hashlib.sha256(data).hexdigest()}
    del data
    cls, hparams = _checked_module(ckpt, path, allowed_classes)
    if not (issubclass(cls, PretrainModule) and "encoder" in hparams):
        module = build_checked(lambda: instantiate_module(cls, hparams), path)
        check_state_dict(ckpt["state_dict"], module.state_dict(), path)
        module.load_state_dict(ckpt["state_dict"])
        return module.eval().audio_encoder, source
    with torch.random.fork_rng():
        torch.manual_seed(0)
        audio_encoder = build_audio_encoder(
            audio_encoder_args(hparams), path, allowed_classes, "a checkpoint", "hyper_parameters"
        )
    prefix = "audio_encoder."
    state = {k[len(prefix) :]: v for k, v in ckpt["state_dict"].items() if k.startswith(prefix)}
    check_state_dict(state, audio_encoder.state_dict(), path, prefix)
    audio_encoder.load_state_dict(state)
    return audio_encoder.to(map_location).eval(), source


def build_checked(build: Any, source: str | Path) -> Any:
    """Run ``build()`` (after :func:`~lit_mrl.trust.check_config`); its failures name ``source``.

    A value the classes refuse (``hop_length: 0``), one the parser rejects, or a module
    too large to allocate becomes one ``ValueError`` line instead of a traceback.
    """
    from jsonargparse import ArgumentError

    from lit_mrl.errors import one_line

    try:
        return build()
    except (ArgumentError, ValueError, TypeError, RuntimeError, MemoryError) as err:
        text = one_line(err)  # the class's own message, not the parser's dump around it
        raise ValueError(f"{source}: cannot build the model it describes: {text[:400]}") from err
