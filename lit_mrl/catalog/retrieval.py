"""How good neighbours are: precision@k of same-label neighbours, recall@k against exact search.

Precision@k is the standard retrieval check of an embedding: of a track's ``k`` nearest
other tracks, the fraction that share its label (multi-class: the same class;
multi-label: at least one tag). Recall@k of an approximate index is the fraction of the
exact top ``k`` it returns. Exact neighbours are computed here by streaming the store
part by part (memory flat in catalog size), not by the index being checked.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from lit_mrl.catalog.neighbours import iter_store, unit_rows
from lit_mrl.formats.embeddings import EmbeddingIndex


def exact_top_k(
    root: str | Path, index: EmbeddingIndex, splits: list[str], queries: np.ndarray, k: int
) -> tuple[np.ndarray, np.ndarray]:
    """``(Q, k)`` cosines and store rows of each query's exact top ``k``, best first."""
    queries = unit_rows(queries)
    best_scores = np.full((len(queries), 0), -np.inf, dtype=np.float32)
    best_rows = np.zeros((len(queries), 0), dtype=np.int64)
    start = 0
    for part in iter_store(root, index, splits):
        scores = queries @ unit_rows(part["embeddings"]).T  # (Q, n)
        rows = np.broadcast_to(np.arange(start, start + scores.shape[1]), scores.shape)
        start += scores.shape[1]
        scores = np.concatenate([best_scores, scores], axis=1)
        rows = np.concatenate([best_rows, rows], axis=1)
        keep = min(k, scores.shape[1])
        top = np.argpartition(-scores, keep - 1, axis=1)[:, :keep]
        best_scores = np.take_along_axis(scores, top, axis=1)
        best_rows = np.take_along_axis(rows, top, axis=1)
    order = np.argsort(-best_scores, axis=1, kind="stable")
    return np.take_along_axis(best_scores, order, 1), np.take_along_axis(best_rows, order, 1)


def recall_at_k(approximate: np.ndarray, exact: np.ndarray, k: int) -> float:
    """Mean fraction of each row's exact top ``k`` rows found in its approximate top ``k``."""
    found = [len(set(a[:k].tolist()) & set(e[:k].tolist())) / k
             for a, e in zip(approximate, exact, strict=True)]  # fmt: skip
    return float(np.mean(found))


def store_labels(root: str | Path, index: EmbeddingIndex, splits: list[str]) -> np.ndarray:
    """Every track's label in row order: ``(N,)`` class indices or ``(N, K)`` bool tags."""
    if index.task not in ("multiclass", "multilabel"):
        raise ValueError(f"{Path(root) / 'index.json'}: task {index.task!r} has no labels to "
                         "compare neighbours by (multiclass or multilabel)")  # fmt: skip
    parts = [part["labels"] for part in iter_store(root, index, splits, labels=True)]
    labels = np.concatenate(parts)
    return labels.astype(np.int32) if index.task == "multiclass" else labels.astype(bool)


def without_self(rows: np.ndarray, queries: np.ndarray, k: int) -> np.ndarray:
    """``(Q, k)`` neighbour rows of ``(Q, k + 1)`` results, each query's own row dropped."""
    kept = [[r for r in row if r != q and r >= 0][:k] for row, q in zip(rows, queries, strict=True)]
    return np.array([row + [-1] * (k - len(row)) for row in kept], dtype=np.int64)


def precision_at_k(labels: np.ndarray, queries: np.ndarray, neighbours: np.ndarray) -> float:
    """Mean fraction of ``(Q, k)`` neighbours sharing a label with their query (-1: a miss)."""
    valid = neighbours >= 0
    other = labels[np.where(valid, neighbours, 0)]
    if labels.ndim == 1:
        same = other == labels[queries][:, None]
    else:  # (Q, k, K) tags: at least one in common
        same = (other & labels[queries][:, None, :]).any(axis=-1)
    return float((same & valid).mean())
