"""The head ``python -m lit_mrl probe`` keeps: the selected config, every seed, as files.

Called once the search is done, with the selected config's kept weights per seed. The
head's tag thresholds are chosen on the validation split and its ensemble is scored on
the test split here, through the head itself (read the way ``label`` reads it), so the
numbers in ``head/config.json`` are what labelling the test split gives.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from lit_mrl.catalog.head import (
    EMBEDDING_FIELDS,
    FORMAT_VERSION,
    HEAD_DIR,
    HEAD_FORMAT,
    ProbeHead,
    write_head,
)
from lit_mrl.catalog.thresholds import THRESHOLD_RULE, f1_thresholds
from lit_mrl.formats.embeddings import EmbeddingIndex, load_split
from lit_mrl.probe.data import ProbeData

ENSEMBLE_RULE = (
    "the mean of the seeds' probabilities (tags: sigmoid, classes: softmax; regression: values)"
)


def _finite(value: Any) -> Any:
    """NaN/inf floats as ``None``, recursively (strict JSON has no NaN)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_finite(v) for v in value]
    return value


def stats_fields(stats: tuple[Tensor, Tensor] | None) -> dict[str, list[float]] | None:
    """``(mean, std)`` float32 tensors as JSON lists (exact: float32 fits in a JSON double)."""
    if stats is None:
        return None
    mean, std = stats
    return {"mean": mean.double().tolist(), "std": std.double().tolist()}


def stack_weights(weights: list[list[Tensor]]) -> tuple[list[Tensor], list[Tensor]]:
    """Per-seed ``[kernel_0 (in, out), ..., bias_0 (1, out), ...]`` lists as stacked layers."""
    layers = len(weights[0]) // 2
    kernels = [torch.stack([w[i].detach().float().cpu() for w in weights]) for i in range(layers)]
    biases = [
        torch.stack([w[layers + i].detach().float().cpu().reshape(1, -1) for w in weights])
        for i in range(layers)
    ]
    return kernels, biases


def numpy_labels(labels: np.ndarray, task: str) -> Tensor:
    """Stored labels as the metrics take them (class indices int64, else float32)."""
    return torch.from_numpy(labels.astype(np.int64 if task == "multiclass" else np.float32))


def head_config(
    data: ProbeData, results: dict[str, Any], root: str | Path, index: EmbeddingIndex
) -> dict[str, Any]:
    """The ``config.json`` fields known once the search is done (no thresholds yet)."""
    from lit_mrl import __version__

    selected = results["selected_config"]
    made = {name: index.settings.get(name) for name in EMBEDDING_FIELDS}
    return {
        "format": HEAD_FORMAT,
        "format_version": FORMAT_VERSION,
        "task": data.task,
        "task_name": results["task_name"],
        "model_name": results["model_name"],
        "vocabulary": list(data.vocabulary),
        "metric": results["metric"],
        "primary_metric": results["primary_metric"],
        "in_dim": data.embed_dim,
        "hidden_dims": list(selected["hidden_dims"]),
        "seeds": list(results["seeds"]),
        "selected_config": {
            k: selected[k]
            for k in ("id", "hidden_dims", "dropout", "weight_decay", "lr", "best_step")
        },
        "output": ENSEMBLE_RULE,
        "embeddings": {
            **made,
            "embed_dim": index.embed_dim,
            "encoder_class": index.settings.get("encoder_class"),
            "folder": str(Path(root).resolve()),
            "splits": dict(data.split_names),
        },
        "standardize": {
            "inputs": stats_fields(data.embedding_stats),
            "targets": stats_fields(data.target_stats),
        },
        "val": results["val"],
        "test": results["test"],
        "test_per_seed": results["test_per_seed"],
        "lit_mrl_version": __version__,
    }


def save_probe_head(
    folder: str | Path,
    weights: list[list[Tensor]],
    data: ProbeData,
    results: dict[str, Any],
    root: str | Path,
    index: EmbeddingIndex,
) -> Path:
    """Write the selected config's head into ``folder/head`` (see :mod:`lit_mrl.catalog.head`).

    Args:
        folder: the probe's results folder.
        weights: per seed, in ``results["seeds"]`` order, the kept kernels ``(in, out)``
            then biases ``(1, out)``, input to output.
        data: the search's data (its standardisation statistics are the head's).
        results: what ``results.json`` records.
        root: the embeddings folder.
        index: its index.

    Returns:
        The head folder.
    """
    from lit_mrl.metrics import score_predictions

    kernels, biases = stack_weights(weights)
    head = ProbeHead(head_config(data, results, root, index), kernels, biases)
    config = head.config
    split_names = data.split_names
    if data.task == "multilabel":
        thresholds, val_f1 = [0.5] * len(data.vocabulary), [None] * len(data.vocabulary)
        if data.has("val"):
            val = load_split(root, split_names["val"], index=index)
            probs = head.scores(torch.from_numpy(val.embeddings)).mean(0)
            thresholds, val_f1 = f1_thresholds(probs, torch.from_numpy(val.labels))
        config.update(thresholds=thresholds, val_f1=val_f1, threshold_rule=THRESHOLD_RULE)
    if data.has("test"):
        test = load_split(root, split_names["test"], index=index)
        ensemble = head.scores(torch.from_numpy(test.embeddings)).mean(0)
        labels = numpy_labels(test.labels, data.task)
        config["test_ensemble"] = score_predictions(
            data.task, ensemble, labels, results["metric"], data.vocabulary
        )[0]
    head.config = _finite(config)
    return write_head(head, Path(folder) / HEAD_DIR)
