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

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from lightning import LightningModule
from lightning.pytorch.cli import instantiate_module

from lit_mrl.trust import UntrustedCheckpointError, check_config, import_class

__all__ = [
    "UntrustedCheckpointError",
    "check_state_dict",
    "import_class",
    "load_pretrained",
    "read_checkpoint",
]


def read_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """A checkpoint file's contents, read as tensors and plain values only (no pickled code).

    Raises:
        FileNotFoundError: ``path`` does not exist.
        ValueError: naming the file, if it is not a readable checkpoint, or has no
            ``state_dict`` of tensors.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {path} not found")
    try:
        ckpt = torch.load(path, map_location=map_location, weights_only=True)
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
    state: dict[str, torch.Tensor], expected: dict[str, torch.Tensor], source: str | Path
) -> None:
    """Refuse a state dict whose tensor names, shapes or values do not fit ``expected``.

    Raises:
        ValueError: naming the file and the first tensors missing, unexpected, of another
            shape, or holding NaN/Inf.
    """
    for what, names in (
        ("lacks the model's tensors", set(expected) - set(state)),
        ("has tensors the model does not", set(state) - set(expected)),
    ):
        if names:
            shown = ", ".join(sorted(names)[:3])
            more = f", ... ({len(names)} in all)" if len(names) > 3 else ""
            raise ValueError(
                f"{source}: state_dict {what}: {shown}{more} (another model or encoder?)"
            )
    for name, value in state.items():
        if value.shape != expected[name].shape:
            raise ValueError(
                f"{source}: state_dict.{name} has shape {tuple(value.shape)}, the model "
                f"expects {tuple(expected[name].shape)}"
            )
        if value.is_floating_point() and not bool(torch.isfinite(value).all()):
            bad = int((~torch.isfinite(value)).sum())
            raise ValueError(f"{source}: state_dict.{name} holds {bad} NaN/Inf values")


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
    cls = check_config(class_path, hparams, path, allowed_classes, base=LightningModule)
    module = build_checked(lambda: instantiate_module(cls, hparams), path)
    check_state_dict(ckpt["state_dict"], module.state_dict(), path)
    module.load_state_dict(ckpt["state_dict"])
    return module.eval()


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
