"""Per-tag decision thresholds of a multi-label head, chosen on the validation split."""

from __future__ import annotations

import torch
from torch import Tensor

FALLBACK_THRESHOLD = 0.5
THRESHOLD_RULE = (
    "per tag, the probability threshold that maximises F1 of the ensemble on the validation "
    "split (midway between two validation scores); 0.5 for a tag without a positive "
    "validation item"
)


def f1_thresholds(probs: Tensor, labels: Tensor) -> tuple[list[float], list[float | None]]:
    """Per tag, the threshold maximising F1 on ``(N, K)`` probabilities and 0/1 labels.

    A tag is predicted where its probability is at least the threshold. Candidates lie
    midway between consecutive distinct scores (below the lowest: half of it), so the
    rule does not sit on a validation item's own score. A tag without a positive item
    gets :data:`FALLBACK_THRESHOLD` and an F1 of ``None``.

    Returns:
        ``K`` thresholds and ``K`` validation F1 scores at them.
    """
    values, order = probs.double().sort(dim=0, descending=True)  # (N, K)
    positive = labels.double().gather(0, order)
    count = torch.arange(1, len(probs) + 1, dtype=torch.float64).unsqueeze(1)
    total = positive.sum(0)
    f1 = 2 * positive.cumsum(0) / (count + total)  # predicting the top i+1 items
    last_of_tie = torch.ones_like(values, dtype=torch.bool)
    last_of_tie[:-1] = values[:-1] != values[1:]  # a cut can only fall between distinct scores
    best = torch.where(last_of_tie, f1, -1.0).argmax(0)  # the first (highest) maximum
    below = torch.cat([values[1:], torch.zeros_like(values[:1])])
    thresholds, scores = [], []
    for tag in range(probs.shape[1]):
        if total[tag] == 0:
            thresholds.append(FALLBACK_THRESHOLD)
            scores.append(None)
            continue
        i = int(best[tag])
        thresholds.append(float((values[i, tag] + below[i, tag]) / 2))
        scores.append(float(f1[i, tag]))
    return thresholds, scores
