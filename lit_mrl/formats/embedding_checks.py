"""Checks of an embeddings part's arrays: lengths that agree, shapes, finite values, labels.

Parts come from disk and may have been made or edited by anyone; these checks make a part
that does not fit an error naming it, the array and how many rows are wrong, before any
number of it is used (:func:`lit_mrl.formats.embeddings.load_split`).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from lit_mrl.formats.embedding_index import TRACK_ARRAYS, EmbeddingIndex, PartEntry


def _shape(array: np.ndarray) -> str:
    return "(" + ", ".join(map(str, array.shape)) + ")"


def check_lengths(path: Path, data: dict[str, np.ndarray], entry: PartEntry | None) -> None:
    """Refuse a part whose arrays disagree in length (among themselves, or with ``entry``).

    Raises:
        ValueError: naming the part and the arrays.
    """
    rows = {k: len(data[k]) if data[k].ndim else -1 for k in data}
    tracks = [k for k in TRACK_ARRAYS if k in rows]
    if "offsets" in rows:
        tracks.append("offsets")
        rows["offsets"] -= 1
    windows = [k for k in ("timeline", "timestamps") if k in rows]
    for group, expected in ((tracks, entry and entry.num_samples),
                            (windows, entry and entry.num_windows)):  # fmt: skip
        lengths = {k: rows[k] for k in group}
        if expected is not None:
            lengths = {"index.json": expected, **lengths}
        if len(set(lengths.values())) > 1:
            said = ", ".join(f"{k} {n + (k == 'offsets')}" for k, n in lengths.items())
            raise ValueError(f"{path}: arrays disagree in length ({said})")
    if "offsets" in data:
        offsets = data["offsets"]
        last = len(data["timeline"]) if "timeline" in data else entry and entry.num_windows
        if (
            offsets.ndim != 1
            or offsets[0] != 0
            or (np.diff(offsets) < 1).any()
            or (last is not None and offsets[-1] != last)
        ):
            raise ValueError(f"{path}: offsets are not the start rows of the timeline")


def check_values(path: Path, data: dict[str, np.ndarray], index: EmbeddingIndex) -> None:
    """Refuse embeddings that are not ``(N, D)`` and finite, and labels that do not fit.

    Labels: multilabel ``(N, K)`` of 0/1, multiclass ``(N,)`` integers in ``[0, K)``,
    regression ``(N, K)`` finite, none ``(N, 0)``; K is the vocabulary's length.

    Raises:
        ValueError: naming the part, the array and how many rows are wrong.
    """
    size, names = index.embed_dim, len(index.vocabulary)
    for name in ("embeddings", "timeline"):
        if name not in data:
            continue
        values = data[name]
        if values.ndim != 2 or values.shape[1] != size or values.dtype.kind != "f":
            raise ValueError(
                f"{path}: {name} are {_shape(values)} {values.dtype}, not (N, {size}) floats "
                f"(embed_dim {size})"
            )
        bad = int((~np.isfinite(values)).any(axis=1).sum())
        if bad:
            raise ValueError(f"{path}: {name} of {bad} of {len(values)} rows hold NaN or Inf")
    if "labels" in data:
        problem = _label_problem(data["labels"], index.task, names)
        if problem:
            raise ValueError(f"{path}: labels {problem}")


def _label_problem(labels: np.ndarray, task: str, names: int) -> str | None:
    rows = len(labels) if labels.ndim else 0
    width = {"multilabel": names, "regression": names, "none": 0}.get(task)
    if task == "multiclass":
        if labels.ndim != 1 or labels.dtype.kind not in "iu":
            return f"are {_shape(labels)} {labels.dtype}, not (N,) class indices (multiclass)"
        bad = int(((labels < 0) | (labels >= names)).sum())
        return f"of {bad} of {rows} rows are not a class index in [0, {names})" if bad else None
    if labels.ndim != 2 or labels.shape[1] != width or labels.dtype.kind not in "iuf":
        return f"are {_shape(labels)} {labels.dtype}, not (N, {width}) numbers ({task})"
    bad = int((~np.isfinite(labels)).any(axis=1).sum())
    if bad:
        return f"of {bad} of {rows} rows hold NaN or Inf"
    if task == "multilabel":
        bad = int(((labels != 0) & (labels != 1)).any(axis=1).sum())
        return f"of {bad} of {rows} rows are not 0/1 multi-hot" if bad else None
    return None
