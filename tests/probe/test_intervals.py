import math

import numpy as np
import pytest
import torch
from torchmetrics.functional import r2_score
from torchmetrics.functional.classification import (
    binary_auroc,
    binary_average_precision,
)

from lit_mrl.probe.intervals import (
    bootstrap,
    weighted_average_precision,
    weighted_r2,
    weighted_roc_auc,
)


def tagged(n=200, seed=0, ties=False):
    rng = np.random.default_rng(seed)
    labels = (rng.random(n) < 0.3).astype(np.int64)
    scores = (labels + rng.standard_normal(n)) / 4 + 0.5
    if ties:
        scores = np.round(scores, 2)  # many equal scores
    return np.clip(scores, 0, 1).astype(np.float32), labels


@pytest.mark.parametrize("ties", [False, True])
def test_weighted_metrics_equal_torchmetrics_on_the_resampled_items(ties):
    scores, labels = tagged(ties=ties)
    rng = np.random.default_rng(1)
    counts = rng.multinomial(len(scores), np.full(len(scores), 1 / len(scores)), size=3)
    auc = weighted_roc_auc(scores, labels, counts)
    ap = weighted_average_precision(scores, labels, counts)
    for b, row in enumerate(counts):
        index = torch.from_numpy(np.repeat(np.arange(len(scores)), row))
        s, y = torch.from_numpy(scores)[index], torch.from_numpy(labels)[index]
        assert auc[b] == pytest.approx(binary_auroc(s, y).item(), abs=1e-6)
        assert ap[b] == pytest.approx(binary_average_precision(s, y).item(), abs=1e-6)


def test_weighted_r2_equals_torchmetrics_on_the_resampled_items():
    rng = np.random.default_rng(0)
    targets = rng.standard_normal((100, 2))
    preds = targets + 0.5 * rng.standard_normal((100, 2))
    counts = rng.multinomial(100, np.full(100, 0.01), size=2)
    r2 = weighted_r2(preds, targets, counts)
    for b, row in enumerate(counts):
        index = np.repeat(np.arange(100), row)
        expected = r2_score(
            torch.from_numpy(preds[index]),
            torch.from_numpy(targets[index]),
            multioutput="raw_values",
        )
        np.testing.assert_allclose(r2[b], expected.numpy(), atol=1e-9)


def test_undefined_auc_is_nan():
    scores, labels = np.array([0.1, 0.2]), np.array([1, 1])
    assert math.isnan(weighted_roc_auc(scores, labels, np.ones((1, 2)))[0])


def test_accuracy_interval_matches_the_binomial_width():
    """A classifier right on 80 % of 2000 items: the 95 % interval is p +- 1.96 sqrt(p(1-p)/n)."""
    n, correct = 2000, 1600
    labels = np.zeros(n, dtype=np.int64)
    preds = np.zeros((n, 2))
    preds[correct:, 1] = 1.0  # the last 400 predicted wrong
    result = bootstrap("multiclass", [preds], labels, replicates=2000, seed=0)
    assert result["mean"]["accuracy"] == pytest.approx(0.8)
    half = (result["high"]["accuracy"] - result["low"]["accuracy"]) / 2
    assert half == pytest.approx(1.96 * math.sqrt(0.8 * 0.2 / n), rel=0.1)
    assert result["low"]["accuracy"] < 0.8 < result["high"]["accuracy"]


def test_a_perfect_tagger_has_a_point_interval_and_seeds_widen_it():
    scores, labels = tagged()
    perfect = labels[:, None].astype(np.float32)
    result = bootstrap("multilabel", [perfect], labels[:, None], replicates=100)
    assert result["low"]["roc_auc"] == result["high"]["roc_auc"] == 1.0
    noisy = scores[:, None]
    alone = bootstrap("multilabel", [noisy], labels[:, None], replicates=300, seed=0)
    mixed = bootstrap("multilabel", [noisy, perfect], labels[:, None], replicates=300, seed=0)
    assert mixed["high"]["roc_auc"] - mixed["low"]["roc_auc"] > (
        alone["high"]["roc_auc"] - alone["low"]["roc_auc"]
    )  # seed-to-seed spread is part of the interval
    assert mixed["mean"]["roc_auc"] == pytest.approx(
        (alone["mean"]["roc_auc"] + 1.0) / 2
    )  # the mean is over seeds


def test_key_score_interval_uses_the_mirex_weights():
    labels = np.zeros(50, dtype=np.int64)  # C major
    preds = np.zeros((50, 24))
    preds[:, 7] = 1.0  # always G major: a fifth above, 0.5 each
    result = bootstrap("multiclass", [preds], labels, metric="mirex_key", replicates=50)
    assert result["mean"]["mirex_key"] == pytest.approx(0.5)
    assert result["low"]["mirex_key"] == pytest.approx(0.5)
    assert result["mean"]["accuracy"] == 0.0
