"""Loading trained modules back from Lightning checkpoints, safely."""

import importlib
from pathlib import Path

import torch
from lightning import LightningModule
from lightning.pytorch.cli import instantiate_module


def import_class(class_path: str) -> type:
    """The class a dotted ``class_path`` (as configs and checkpoints store it) names."""
    module_name, _, class_name = class_path.rpartition(".")
    return getattr(importlib.import_module(module_name), class_name)


def load_pretrained(path: str | Path, map_location: str | torch.device = "cpu") -> LightningModule:
    """Rebuild a module trained through ``python -m lit_mrl fit`` and load its weights.

    The checkpoint is read with ``weights_only=True`` (no arbitrary unpickling); the
    module and its encoder are rebuilt from the ``class_path``/``init_args`` the CLI
    stored as hyper-parameters.

    Args:
        path: a ``.ckpt`` file.
        map_location: device for the weights.

    Returns:
        The module in eval mode.

    Raises:
        FileNotFoundError: ``path`` does not exist.
        ValueError: the checkpoint was not written by a CLI run (no class path stored).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {path} not found")
    ckpt = torch.load(path, map_location=map_location, weights_only=True)
    hparams = dict(ckpt.get("hyper_parameters", {}))
    class_path = hparams.pop("_class_path", None)
    hparams.pop("_instantiator", None)
    if class_path is None:
        raise ValueError(
            f"{path} stores no module class path: train through `python -m lit_mrl fit` "
            "so the checkpoint records how to rebuild its model"
        )
    module = instantiate_module(import_class(class_path), hparams)
    module.load_state_dict(ckpt["state_dict"])
    return module.eval()
