"""Loading trained modules back from Lightning checkpoints, safely.

A checkpoint is untrusted input: people download them. ``torch.load(weights_only=True)``
stops pickles, but a Lightning CLI checkpoint also names the classes that rebuild its
module (``hyper_parameters["_class_path"]`` and every nested ``class_path``: encoder,
frontend, optimizer, ...). Building an arbitrary class runs arbitrary code (a crafted
checkpoint naming ``subprocess.Popen`` with ``shell: true`` runs a shell command), and so
can importing an arbitrary module. So every class path in a checkpoint is checked
*before* anything is imported or built: only classes lit_mrl defines, torch optimizers,
LR schedulers and ``torch.nn`` modules, and classes the caller allows by name are used.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import torch
from lightning import LightningModule
from lightning.pytorch.cli import instantiate_module

# module prefix -> base class the named class must derive from (checked after import)
TRUSTED_PREFIXES: dict[str, str] = {
    "lit_mrl.": "object",
    "torch.optim.lr_scheduler.": "torch.optim.lr_scheduler.LRScheduler",
    "torch.optim.": "torch.optim.Optimizer",
    "torch.nn.": "torch.nn.Module",
}


class UntrustedCheckpointError(ValueError):
    """A checkpoint names a class that lit_mrl will not import or build."""


def import_class(class_path: str) -> type:
    """The class a dotted ``class_path`` (as configs and checkpoints store it) names."""
    module_name, _, class_name = class_path.rpartition(".")
    return getattr(importlib.import_module(module_name), class_name)


def class_paths(value: Any, where: str = "hyper_parameters") -> Iterator[tuple[str, Any]]:
    """Every ``(location, class path)`` in a nested dict/list of hyper-parameters."""
    if isinstance(value, dict):
        for key, item in value.items():
            if key in ("class_path", "_class_path"):
                yield f"{where}.{key}", item
            else:
                yield from class_paths(item, f"{where}.{key}")
    elif isinstance(value, (list, tuple)):
        for index, item in enumerate(value):
            yield from class_paths(item, f"{where}[{index}]")


def _trusted_base(class_path: str, allowed: Sequence[str]) -> str | None:
    if class_path in allowed:
        return "object"
    for prefix, base in TRUSTED_PREFIXES.items():
        if class_path.startswith(prefix):
            return base
    return None


def check_class_paths(
    hparams: dict[str, Any], source: str | Path, allowed: Sequence[str] = ()
) -> None:
    """Refuse hyper-parameters that name a class lit_mrl does not trust.

    A class path is trusted if it is in ``allowed``, or starts with ``lit_mrl.`` and names a
    class defined in lit_mrl, or names a torch optimizer, LR scheduler or ``torch.nn``
    module. Only trusted prefixes are ever imported (importing a module runs its code).

    Args:
        hparams: the checkpoint's ``hyper_parameters``.
        source: the checkpoint file, for messages.
        allowed: exact class paths the caller trusts besides these.

    Raises:
        UntrustedCheckpointError: naming the file, the field and the class.
    """
    for where, class_path in class_paths(hparams):
        if (
            not isinstance(class_path, str)
            or not class_path.replace("_", "a").replace(".", "a").isalnum()
        ):
            raise UntrustedCheckpointError(
                f"{source}: {where} is {class_path!r}, not a dotted class path"
            )
        base = _trusted_base(class_path, allowed)
        refusal = (
            f"{source}: {where} names {class_path!r}, which lit_mrl does not build from a "
            "checkpoint (only lit_mrl classes, torch optimizers, LR schedulers and torch.nn "
            "modules); if you trust this file, allow the class by name (allowed_classes / "
            "--allow_class)"
        )
        if base is None:
            raise UntrustedCheckpointError(refusal)
        try:
            cls = import_class(class_path)
        except (ImportError, AttributeError, ValueError) as err:
            raise UntrustedCheckpointError(
                f"{source}: {where} names {class_path!r}, which does not exist ({err})"
            ) from err
        if not isinstance(cls, type):
            raise UntrustedCheckpointError(refusal)
        defined_in_lit_mrl = cls.__module__.split(".")[0] == "lit_mrl"
        if base == "object" and class_path not in allowed and not defined_in_lit_mrl:
            raise UntrustedCheckpointError(refusal)  # e.g. lit_mrl.x.Popen imported there
        if base != "object" and not issubclass(cls, import_class(base)):
            raise UntrustedCheckpointError(refusal)


def load_pretrained(
    path: str | Path,
    map_location: str | torch.device = "cpu",
    allowed_classes: Sequence[str] = (),
) -> LightningModule:
    """Rebuild a module trained through ``python -m lit_mrl fit`` and load its weights.

    The checkpoint is read with ``weights_only=True`` (no arbitrary unpickling), every
    class it names is checked (see :func:`check_class_paths`), then the module and its
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
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {path} not found")
    try:
        ckpt = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as err:  # a truncated file, a pickle with code, not a checkpoint
        raise ValueError(f"{path} is not a readable checkpoint: {err}") from err
    if not isinstance(ckpt, dict) or not isinstance(ckpt.get("state_dict"), dict):
        raise ValueError(f"{path} is not a Lightning checkpoint (no state_dict)")
    hparams = dict(ckpt.get("hyper_parameters") or {})
    class_path = hparams.pop("_class_path", None)
    hparams.pop("_instantiator", None)
    if class_path is None:
        raise ValueError(
            f"{path} stores no module class path: train through `python -m lit_mrl fit` "
            "so the checkpoint records how to rebuild its model"
        )
    check_class_paths({"_class_path": class_path, **hparams}, path, allowed_classes)
    cls = import_class(class_path)
    if not issubclass(cls, LightningModule):
        raise UntrustedCheckpointError(
            f"{path}: hyper_parameters._class_path names {class_path!r}, not a LightningModule"
        )
    module = instantiate_module(cls, hparams)
    module.load_state_dict(ckpt["state_dict"])
    return module.eval()
