"""A trained probe head as files: ``head/config.json`` + ``head/model.safetensors``.

``python -m lit_mrl probe`` saves the config it selected, as trained with every seed,
beside ``results.json``::

    runs/probe/gtzan-mymodel/
        results.json  grid.csv  per_class.csv
        head/
            config.json        # task, vocabulary, layer sizes, input (and target)
                               # standardisation, the embedding model's fingerprint,
                               # tag thresholds, validation and test metrics
            model.safetensors  # kernel.<l> (E, in, out) and bias.<l> (E, 1, out)

Every seed is kept. ``results.json``'s test metric is the *mean over seeds* of each
seed's metric, so the head reproduces it seed by seed (``label --per_seed true`` writes
each seed's probabilities; their metrics, averaged, are ``results.json``'s ``test``).
What a catalog is labelled with is the seeds' ensemble: the mean of their probabilities
(of their values, for regression). Its test metric, ``test_ensemble``, is in the config
too; averaging seeds usually scores a little higher than one seed.

Loading reads JSON and raw tensors only, never code: the MLP is built from the layer
sizes in the config and applied as the probe search applies its members (standardise
with the training split's statistics, batched matrix products and ReLU, back to the
target's units), so its outputs are the search's, to float rounding.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from lit_mrl.errors import UsageError

HEAD_DIR = "head"
CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"
HEAD_FORMAT = "lit_mrl.probe_head"
FORMAT_VERSION = 1
MAX_CONFIG_BYTES = 64 << 20
TASKS = ("multilabel", "multiclass", "regression")
# embeddings' index.json fields a head must agree with (the fingerprint names the weights)
EMBEDDING_FIELDS = ("fingerprint", "window_seconds", "hop_seconds", "sample_rate")


@dataclass
class ProbeHead:
    """``E`` probes of one shape (one per seed) and everything needed to apply them.

    Args:
        config: the ``config.json`` fields (see the module docstring).
        kernels: per layer ``(E, in, out)``.
        biases: per layer ``(E, 1, out)``.
        folder: where it was read from (for messages).
        digest: sha256 of its two files (what made a labelled table).
    """

    config: dict[str, Any]
    kernels: list[Tensor]
    biases: list[Tensor]
    folder: Path | None = None
    digest: str | None = None
    _stats: dict[str, tuple[Tensor, Tensor] | None] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        for name in ("inputs", "targets"):
            stats = self.config["standardize"][name]
            self._stats[name] = None if stats is None else (
                torch.tensor(stats["mean"], dtype=torch.float32),
                torch.tensor(stats["std"], dtype=torch.float32),
            )  # fmt: skip

    @property
    def task(self) -> str:
        """``multilabel``, ``multiclass`` or ``regression``."""
        return self.config["task"]

    @property
    def vocabulary(self) -> list[str]:
        """Tags, classes or regression outputs, in output order."""
        return self.config["vocabulary"]

    @property
    def num_seeds(self) -> int:
        """Members E."""
        return self.kernels[0].shape[0]

    @property
    def name(self) -> str:
        """The task's name (column prefix of a labelled table)."""
        return self.config["task_name"]

    @torch.no_grad()
    def outputs(self, emb: Tensor) -> Tensor:
        """``(E, N, K)`` each seed's logits (tags, classes) or values, for ``(N, D)`` embeddings.

        Regression values are in the targets' own units. Rows are computed in blocks of
        the size the search predicts in, so a split given whole gets the search's own
        numbers.
        """
        emb = emb.float()
        if self._stats["inputs"] is not None:
            mean, std = self._stats["inputs"]
            emb = (emb - mean) / std
        widest = max(k.shape[2] for k in self.kernels)
        batch = max(256, 2**24 // (self.num_seeds * widest))  # as StackedMLP.predict
        out = torch.cat([self._forward(chunk) for chunk in emb.split(batch)], dim=1)
        if self._stats["targets"] is not None:
            mean, std = self._stats["targets"]
            out = out * std + mean
        return out

    def _forward(self, emb: Tensor) -> Tensor:
        hidden = emb.expand(self.num_seeds, *emb.shape)  # (N, D) -> (E, N, D), no copy
        for i, (kernel, bias) in enumerate(zip(self.kernels, self.biases, strict=True)):
            hidden = torch.baddbmm(bias, hidden, kernel)
            if i < len(self.kernels) - 1:
                hidden.relu_()
        return hidden

    def scores(self, emb: Tensor) -> Tensor:
        """``(E, N, K)`` each seed's probabilities (tags: sigmoid, classes: softmax) or values."""
        out = self.outputs(emb)
        if self.task == "multilabel":
            return out.sigmoid()
        return out.softmax(-1) if self.task == "multiclass" else out

    def check_embeddings(self, settings: dict[str, Any], embed_dim: int, where: str) -> None:
        """Refuse embeddings made by another model or windowing than the head's.

        Args:
            settings: the embeddings' ``index.json`` settings (``fingerprint``, ...).
            embed_dim: their size.
            where: the embeddings folder, for messages.

        Raises:
            UsageError: one line naming both values.
        """
        made = self.config["embeddings"]
        mine, theirs = made.get("fingerprint"), settings.get("fingerprint")
        if mine is None or theirs is None:
            missing = f"head {self.folder}" if mine is None else f"{where}/index.json"
            raise UsageError(
                f"{missing} records no embedding model fingerprint, so the head cannot be "
                "checked against the embeddings: embed with python -m lit_mrl embed"
            )
        if mine != theirs:
            raise UsageError(
                f"head {self.folder} was trained on embeddings of model {mine}, but {where} "
                f"holds embeddings of model {theirs}: apply it to embeddings of its own model"
            )
        if embed_dim != self.config["in_dim"]:
            raise UsageError(f"head {self.folder} takes {self.config['in_dim']}-d embeddings, "
                             f"{where} holds {embed_dim}-d ones")  # fmt: skip
        for name in EMBEDDING_FIELDS[1:]:
            if made.get(name) != settings.get(name):
                raise UsageError(
                    f"head {self.folder} was trained on embeddings with {name}={made.get(name)!r}, "
                    f"{where} has {name}={settings.get(name)!r}: embed with the head's settings"
                )


def read_head(path: str | Path) -> ProbeHead:
    """A head folder (or a probe results folder holding ``head/``), checked.

    Raises:
        FileNotFoundError: no head there.
        ValueError: naming the file and field, for files that are not a head's.
    """
    from safetensors import SafetensorError
    from safetensors.torch import load

    folder = Path(path)
    if not (folder / CONFIG_NAME).is_file() and (folder / HEAD_DIR / CONFIG_NAME).is_file():
        folder = folder / HEAD_DIR
    config_path, weights_path = folder / CONFIG_NAME, folder / WEIGHTS_NAME
    for file in (config_path, weights_path):
        if not file.is_file():
            raise FileNotFoundError(f"{file} not found (a probe head folder holds "
                                    f"{CONFIG_NAME} and {WEIGHTS_NAME})")  # fmt: skip
    text, data = config_path.read_bytes(), weights_path.read_bytes()
    config = _checked_config(config_path, text)
    try:
        tensors = load(data)
    except (SafetensorError, RuntimeError, ValueError) as err:
        raise ValueError(f"{weights_path} is not a readable safetensors file: {err}") from err
    kernels, biases = _checked_tensors(weights_path, config, tensors)
    digest = hashlib.sha256(text)
    digest.update(hashlib.sha256(data).digest())
    return ProbeHead(config, kernels, biases, folder, digest.hexdigest())


def _checked_config(path: Path, text: bytes) -> dict[str, Any]:
    if len(text) > MAX_CONFIG_BYTES:
        raise ValueError(f"{path} is {len(text):,} bytes, too large for a head config")
    try:
        config = json.loads(text.decode("utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError) as err:
        raise ValueError(f"{path} is not JSON ({err})") from err
    if not isinstance(config, dict) or config.get("format") != HEAD_FORMAT:
        raise ValueError(f"{path}: field 'format' is not {HEAD_FORMAT!r} (a probe head)")
    if config.get("format_version") != FORMAT_VERSION:
        raise ValueError(f"{path}: format_version {config.get('format_version')!r} is not "
                         f"{FORMAT_VERSION}")  # fmt: skip
    vocabulary, dims = config.get("vocabulary"), config.get("hidden_dims")
    checks = {
        "task": config.get("task") in TASKS,
        "task_name": isinstance(config.get("task_name"), str) and config["task_name"] != "",
        "vocabulary": isinstance(vocabulary, list) and all(isinstance(v, str) for v in vocabulary)
        and len(set(vocabulary)) == len(vocabulary) > 0,
        "in_dim": _positive(config.get("in_dim")),
        "hidden_dims": isinstance(dims, list) and all(_positive(w) for w in dims),
        "embeddings": isinstance(config.get("embeddings"), dict),
        "standardize": isinstance(config.get("standardize"), dict)
        and set(config["standardize"]) == {"inputs", "targets"},
    }  # fmt: skip
    for name, ok in checks.items():
        if not ok:
            raise ValueError(f"{path}: field {name!r} is missing or invalid")
    widths = {"inputs": config["in_dim"], "targets": len(vocabulary)}
    for name, width in widths.items():
        stats = config["standardize"][name]
        if stats is None:
            continue
        for part in ("mean", "std"):
            values = stats.get(part) if isinstance(stats, dict) else None
            if not _floats(values, width) or (part == "std" and min(values) <= 0):
                raise ValueError(f"{path}: field standardize.{name}.{part} is not {width} "
                                 "finite numbers" + (" above 0" if part == "std" else ""))  # fmt: skip
    if config["standardize"]["targets"] is not None and config["task"] != "regression":
        raise ValueError(f"{path}: only a regression head standardises targets")
    thresholds = config.get("thresholds")
    if config["task"] == "multilabel" and not _floats(thresholds, len(vocabulary)):
        raise ValueError(f"{path}: field 'thresholds' is not {len(vocabulary)} finite numbers")
    return config


def _positive(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value > 0


def _floats(values: Any, width: int) -> bool:
    return (
        isinstance(values, list)
        and len(values) == width
        and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values)
        and all(math.isfinite(v) for v in values)
    )


def _checked_tensors(
    path: Path, config: dict[str, Any], tensors: dict[str, Tensor]
) -> tuple[list[Tensor], list[Tensor]]:
    dims = [config["in_dim"], *config["hidden_dims"], len(config["vocabulary"])]
    layers = len(dims) - 1
    expected = {f"kernel.{i}" for i in range(layers)} | {f"bias.{i}" for i in range(layers)}
    if set(tensors) != expected:
        raise ValueError(f"{path}: holds {sorted(tensors)}, the config's layers need "
                         f"{sorted(expected)}")  # fmt: skip
    members = tensors["kernel.0"].shape[0] if tensors["kernel.0"].dim() == 3 else 0
    kernels, biases = [], []
    for i in range(layers):
        for name, shape in ((f"kernel.{i}", (members, dims[i], dims[i + 1])),
                            (f"bias.{i}", (members, 1, dims[i + 1]))):  # fmt: skip
            tensor = tensors[name]
            if members < 1 or tuple(tensor.shape) != shape or tensor.dtype != torch.float32:
                raise ValueError(f"{path}: {name} is {tuple(tensor.shape)} {tensor.dtype}, "
                                 f"not {shape} float32")  # fmt: skip
            if not torch.isfinite(tensor).all():
                raise ValueError(f"{path}: {name} holds NaN or Inf")
        kernels.append(tensors[f"kernel.{i}"])
        biases.append(tensors[f"bias.{i}"])
    return kernels, biases


def write_head(head: ProbeHead, folder: str | Path) -> Path:
    """Write ``head`` as a head folder (weights, then the config: its presence marks it done)."""
    from safetensors.torch import save

    from lit_mrl.formats.files import atomic_write

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    tensors = {f"kernel.{i}": k.detach().float().cpu().contiguous()
               for i, k in enumerate(head.kernels)}  # fmt: skip
    tensors.update(
        {f"bias.{i}": b.detach().float().cpu().contiguous() for i, b in enumerate(head.biases)}
    )
    atomic_write(folder / WEIGHTS_NAME, save(tensors, metadata={"format": HEAD_FORMAT}))
    text = json.dumps(head.config, indent=2, allow_nan=False) + "\n"
    atomic_write(folder / CONFIG_NAME, text.encode())
    return folder
