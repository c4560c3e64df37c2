"""The table ``python -m lit_mrl label`` writes: a row per track, columns per task.

Columns (``<task>`` is the head's task name, e.g. ``mtat``)::

    key, split
    multilabel  <task>.tags       list<string>  the tags at or above their thresholds
                <task>.top_tags   list<string>  the top-k tags, most probable first
                <task>.top_probs  list<float>   their probabilities
                <task>.probs      [K] float     every tag's probability, vocabulary order
    multiclass  <task>.class      string        the most probable class
                <task>.prob       float         its probability
                <task>.probs      [K] float     every class's probability
    regression  <task>.<output>   float         the value in the target's units
    --per_seed  <task>.seed_probs [E][K] float  each seed's probabilities (regression:
                                                <task>.seed_values), to check a head

Probabilities are the seeds' ensemble (:mod:`lit_mrl.catalog.head`), float32. The CSV
has the same rows without the ``[K]`` and ``[E][K]`` columns: lists are joined with
``|`` and probabilities rounded to 4 decimals. Each task's vocabulary and thresholds are
in the Parquet file's metadata (``lit_mrl.label``).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from lit_mrl.catalog.head import ProbeHead

METADATA_KEY = b"lit_mrl.label"
CSV_DECIMALS = 4


def _lists(values: np.ndarray, counts: np.ndarray, kind: pa.DataType) -> pa.Array:
    offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int32)
    return pa.ListArray.from_arrays(pa.array(offsets), pa.array(values, type=kind))


def _fixed(values: np.ndarray) -> pa.Array:
    """``(N, K)`` (or ``(N, E, K)``) float32 as fixed-size list rows."""
    array = pa.array(np.ascontiguousarray(values, dtype=np.float32).reshape(-1))
    for width in reversed(values.shape[1:]):
        array = pa.FixedSizeListArray.from_arrays(array, width)
    return array


def task_columns(
    head: ProbeHead, scores: np.ndarray, top_k: int, per_seed: bool
) -> dict[str, pa.Array]:
    """The columns of one task for ``(E, N, K)`` per-seed probabilities (or values)."""
    name, vocabulary = head.name, np.asarray(head.vocabulary, dtype=object)
    ensemble = scores.mean(axis=0, dtype=np.float32)  # as torch's mean: float32 sums
    rows = len(ensemble)
    columns: dict[str, pa.Array] = {}
    if head.task == "regression":
        for i, output in enumerate(head.vocabulary):
            columns[f"{name}.{output}"] = pa.array(ensemble[:, i])
    elif head.task == "multiclass":
        best = ensemble.argmax(axis=1)
        columns[f"{name}.class"] = pa.array(vocabulary[best].tolist(), type=pa.string())
        columns[f"{name}.prob"] = pa.array(ensemble[np.arange(rows), best])
        columns[f"{name}.probs"] = _fixed(ensemble)
    else:
        chosen = ensemble >= np.asarray(head.config["thresholds"])
        hit_rows, hit_tags = np.nonzero(chosen)
        counts = np.bincount(hit_rows, minlength=rows)
        columns[f"{name}.tags"] = _lists(vocabulary[hit_tags], counts, pa.string())
        k = min(top_k, len(vocabulary))
        top = np.argsort(-ensemble, axis=1, kind="stable")[:, :k]
        counts = np.full(rows, k)
        columns[f"{name}.top_tags"] = _lists(vocabulary[top].reshape(-1), counts, pa.string())
        probs = np.take_along_axis(ensemble, top, axis=1).reshape(-1)
        columns[f"{name}.top_probs"] = _lists(probs, counts, pa.float32())
        columns[f"{name}.probs"] = _fixed(ensemble)
    if per_seed:
        kind = "seed_values" if head.task == "regression" else "seed_probs"
        columns[f"{name}.{kind}"] = _fixed(scores.transpose(1, 0, 2))
    return columns


def part_table(
    keys: list[str],
    split: str,
    heads: list[ProbeHead],
    scores: list[np.ndarray],
    top_k: int,
    per_seed: bool,
) -> pa.Table:
    """The rows of one embeddings part; ``scores``: per head ``(E, N, K)``."""
    columns: dict[str, pa.Array] = {
        "key": pa.array(keys, type=pa.string()),
        "split": pa.array([split] * len(keys), type=pa.string()),
    }
    for head, values in zip(heads, scores, strict=True):
        columns.update(task_columns(head, values, top_k, per_seed))
    return pa.table(columns)


def table_metadata(heads: list[ProbeHead], fingerprint: str, extra: dict[str, Any]) -> dict:
    """What the Parquet file says about its columns: per task its vocabulary and rule."""
    tasks = {
        head.name: {
            "task": head.task,
            "vocabulary": head.vocabulary,
            "thresholds": head.config.get("thresholds"),
            "head": str(head.folder),
            "head_digest": head.digest,
            "seeds": head.num_seeds,
            "metric": head.config["metric"],
            "test_ensemble": head.config.get("test_ensemble"),
        }
        for head in heads
    }
    return {"embedding_fingerprint": fingerprint, "tasks": tasks, **extra}


def _joined(array: pa.ChunkedArray) -> pa.Array:
    lists = array.combine_chunks()
    values = lists.flatten()  # respects a slice's offsets
    if pa.types.is_floating(values.type):
        values = pc.cast(pc.round(values, CSV_DECIMALS), pa.string())
    offsets = pc.subtract(lists.offsets, lists.offsets[0])
    return pc.binary_join(pa.ListArray.from_arrays(offsets, values), "|")


def csv_table(table: pa.Table) -> pa.Table:
    """``table`` as CSV columns: lists joined with ``|``, no per-class or per-seed arrays."""
    columns = {}
    for name in table.column_names:
        column = table[name]
        if pa.types.is_fixed_size_list(column.type):
            continue
        if pa.types.is_list(column.type):
            columns[name] = _joined(column)
        elif pa.types.is_floating(column.type) and name.endswith(".prob"):
            columns[name] = pc.round(column, CSV_DECIMALS)
        else:
            columns[name] = column
    return pa.table(columns)
