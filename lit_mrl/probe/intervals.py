"""Bootstrap confidence intervals of test metrics, over test items and seeds.

A replicate draws ``N`` test items with replacement (as integer counts per item) and
``K`` seeds with replacement, computes the metric of each drawn seed's predictions on
the drawn items, and averages over the drawn seeds; the interval is the 2.5 and 97.5
percentiles of ``B`` replicates. Every metric takes per-item weights (the counts), so a
replicate never copies the data: ROC-AUC and AP sort each class once and then
accumulate weights, accuracy and the MIREX score are weighted means, R² weighted sums.

Metrics are those of :func:`lit_mrl.metrics.score_predictions`; a class whose metric is
undefined in a replicate (no positives drawn) is left out of that replicate's mean.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
import torch

from lit_mrl.metrics import mirex_key_score

CONFIDENCE = 0.95


def _groups(scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Sort order of ``scores`` and the start index of each run of equal scores."""
    order = np.argsort(scores, kind="stable")
    sorted_scores = scores[order]
    starts = np.flatnonzero(np.r_[True, sorted_scores[1:] != sorted_scores[:-1]])
    return order, starts


def weighted_roc_auc(scores: np.ndarray, labels: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """ROC-AUC of one class under ``B`` weightings of the items (ties count one half).

    Args:
        scores: ``(N,)`` scores of the class.
        labels: ``(N,)`` 0/1 targets.
        weights: ``(B, N)`` non-negative item weights (bootstrap counts).

    Returns:
        ``(B,)`` AUCs, NaN where a weighting has no positive or no negative.
    """
    order, starts = _groups(scores)
    w = weights[:, order].astype(np.float64)
    y = labels[order].astype(bool)
    pos = np.add.reduceat(np.where(y, w, 0.0), starts, axis=1)  # (B, G) per score group
    neg = np.add.reduceat(np.where(y, 0.0, w), starts, axis=1)
    below = np.cumsum(neg, axis=1) - neg  # negative weight strictly below each group
    wins = (pos * (below + 0.5 * neg)).sum(axis=1)
    total = pos.sum(axis=1) * neg.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(total > 0, wins / total, np.nan)


def weighted_average_precision(
    scores: np.ndarray, labels: np.ndarray, weights: np.ndarray
) -> np.ndarray:
    """Average precision of one class under ``B`` weightings (thresholds at each score).

    ``AP = sum_t (R_t - R_{t-1}) P_t`` over decreasing thresholds ``t``, as scikit-learn
    and torchmetrics compute it; NaN where a weighting has no positive.
    """
    order, starts = _groups(-scores)  # descending scores
    w = weights[:, order].astype(np.float64)
    y = labels[order].astype(bool)
    tp = np.cumsum(np.add.reduceat(np.where(y, w, 0.0), starts, axis=1), axis=1)
    seen = np.cumsum(np.add.reduceat(w, starts, axis=1), axis=1)
    positives = tp[:, -1:]
    with np.errstate(invalid="ignore", divide="ignore"):
        precision = np.where(seen > 0, tp / seen, 0.0)
        recall_step = np.diff(np.c_[np.zeros(len(w)), tp], axis=1) / positives
        return np.where(positives[:, 0] > 0, (recall_step * precision).sum(axis=1), np.nan)


def weighted_r2(preds: np.ndarray, targets: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """``(B, K)`` R² of each output under ``B`` weightings; preds/targets ``(N, K)``."""
    w = weights.astype(np.float64)
    total_w = w.sum(axis=1, keepdims=True)  # (B, 1)
    mean = (w @ targets) / total_w  # (B, K)
    residual = w @ (targets - preds) ** 2  # (B, K)
    spread = w @ targets**2 - total_w * mean**2
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(spread > 0, 1.0 - residual / spread, np.nan)


def replicate_metrics(
    task: str,
    preds: np.ndarray,
    labels: np.ndarray,
    weights: np.ndarray,
    metric: str = "default",
    key_map: np.ndarray | None = None,
) -> dict[str, np.ndarray]:
    """Metrics of one seed's predictions under ``B`` item weightings.

    Returns:
        ``{name: (B,) values}`` for the summary metrics and ``{name/class: (B, K)}``
        per-class values (keys ``per_class/<metric>``).
    """
    if task == "multilabel":
        preds = as_probabilities(preds)
        per_class = {
            "roc_auc": np.stack(
                [weighted_roc_auc(preds[:, k], labels[:, k], weights) for k in range(preds.shape[1])],
                axis=1,
            ),
            "pr_auc": np.stack(
                [weighted_average_precision(preds[:, k], labels[:, k], weights)
                 for k in range(preds.shape[1])],
                axis=1,
            ),
        }  # fmt: skip
        with _quiet():
            out = {name: np.nanmean(values, axis=1) for name, values in per_class.items()}
        return {**out, **{f"per_class/{n}": v for n, v in per_class.items()}}
    if task == "regression":
        r2 = weighted_r2(preds, labels, weights)
        return {"r2": r2.mean(axis=1), "per_class/r2": r2}
    hits = (preds.argmax(axis=1) == labels).astype(np.float64)  # (N,)
    w = weights.astype(np.float64)
    out = {"accuracy": (w @ hits) / w.sum(axis=1)}
    num_classes = preds.shape[1]
    onehot = np.eye(num_classes)[labels]  # (N, C)
    counts = w @ onehot  # (B, C)
    with np.errstate(invalid="ignore", divide="ignore"):
        recall = np.where(counts > 0, (w * hits) @ onehot / counts, np.nan)
    with _quiet():
        out["macro_accuracy"] = np.nanmean(recall, axis=1)
    out["per_class/accuracy"] = recall
    if metric == "mirex_key":
        mapping = key_map if key_map is not None else np.arange(num_classes)
        pred, true = mapping[preds.argmax(axis=1)], mapping[labels]
        scores = mirex_key_score(torch.from_numpy(pred), torch.from_numpy(true)).double().numpy()
        out["mirex_key"] = (w @ scores) / w.sum(axis=1)
    return out


def as_probabilities(logits: np.ndarray) -> np.ndarray:
    """Scores as torchmetrics ranks them: a float32 sigmoid unless already in [0, 1].

    Large logits saturate to equal float32 probabilities; ranking the same values as
    :func:`lit_mrl.metrics.score_predictions` keeps intervals and point values consistent.
    """
    scores = torch.from_numpy(np.asarray(logits, dtype=np.float32))
    if bool(((scores < 0) | (scores > 1)).any()):
        scores = scores.sigmoid()
    return scores.numpy()


@contextmanager
def _quiet() -> Iterator[None]:
    """Silence numpy for all-NaN rows and empty means (they stay NaN)."""
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore", RuntimeWarning)
        yield


def bootstrap(
    task: str,
    preds_per_seed: list[np.ndarray],
    labels: np.ndarray,
    metric: str = "default",
    key_map: np.ndarray | None = None,
    replicates: int = 1000,
    seed: int = 0,
    chunk: int = 200,
) -> dict[str, dict[str, np.ndarray]]:
    """Mean over seeds and percentile interval over items and seeds of every metric.

    Args:
        task: ``multilabel``, ``multiclass`` or ``regression``.
        preds_per_seed: ``K`` arrays of test predictions ``(N, C)``, one per seed.
        labels: ``(N, C)`` multi-hot or values, or ``(N,)`` class indices.
        metric: ``"mirex_key"`` adds the MIREX key score.
        key_map: canonical key index of each class (for ``mirex_key``).
        replicates: bootstrap replicates ``B``.
        seed: seed of the resampling.
        chunk: replicates computed at once (bounds memory at ``chunk x N`` weights).

    Returns:
        ``{"mean": ..., "low": ..., "high": ...}``, each ``{name: value}`` with floats
        for summary metrics and ``(C,)`` arrays for ``per_class/<metric>``. ``mean`` is
        the metric on all items, averaged over seeds.
    """
    rng = np.random.default_rng(seed)
    n, k = len(labels), len(preds_per_seed)
    full = np.ones((1, n))
    means = [replicate_metrics(task, p, labels, full, metric, key_map) for p in preds_per_seed]
    with _quiet():
        mean = {name: np.nanmean([m[name][0] for m in means], axis=0) for name in means[0]}
    draws: dict[str, list[np.ndarray]] = {name: [] for name in mean}
    for start in range(0, replicates, chunk):
        size = min(chunk, replicates - start)
        weights = rng.multinomial(n, np.full(n, 1.0 / n), size=size)  # (b, N) item counts
        seed_counts = rng.multinomial(k, np.full(k, 1.0 / k), size=size)  # (b, K)
        per_seed = [
            replicate_metrics(task, p, labels, weights, metric, key_map) for p in preds_per_seed
        ]
        for name in draws:
            stacked = np.stack([m[name] for m in per_seed], axis=1)  # (b, K, ...)
            shape = (size, k) + (1,) * (stacked.ndim - 2)
            counts = seed_counts.reshape(shape).astype(np.float64)
            with _quiet():
                valid = ~np.isnan(stacked)
                total = np.where(valid, stacked, 0.0) * counts
                draws[name].append(total.sum(axis=1) / (counts * valid).sum(axis=1))
    tail = (1.0 - CONFIDENCE) / 2 * 100
    with _quiet():
        values = {name: np.concatenate(chunks) for name, chunks in draws.items()}
        low = {name: np.nanpercentile(v, tail, axis=0) for name, v in values.items()}
        high = {name: np.nanpercentile(v, 100 - tail, axis=0) for name, v in values.items()}
    return {"mean": mean, "low": low, "high": high}
