import math

import pytest
import torch

from lit_mrl.metrics import (
    KEY_NAMES,
    MirexKeyScore,
    classification_metrics,
    key_index,
    key_metrics,
    mirex_key_score,
    regression_metrics,
    score_predictions,
    task_metrics,
)

# (reference, estimate, score): every category, both modes, enharmonic spellings
KEY_CASES = [
    ("C major", "C major", 1.0),
    ("C major", "G major", 0.5),  # fifth above
    ("C major", "F major", 0.0),  # fifth below: not credited (mir_eval)
    ("C major", "A minor", 0.3),  # relative minor
    ("C major", "C minor", 0.2),  # parallel
    ("C major", "D major", 0.0),
    ("C major", "E minor", 0.0),
    ("A minor", "A minor", 1.0),
    ("A minor", "E minor", 0.5),
    ("A minor", "D minor", 0.0),
    ("A minor", "C major", 0.3),  # relative major
    ("A minor", "A major", 0.2),
    ("A minor", "E major", 0.0),
    ("Db major", "C# major", 1.0),
    ("Db major", "Ab major", 0.5),
    ("Bb minor", "Db major", 0.3),
    ("Bb minor", "F minor", 0.5),
    ("B major", "F# major", 0.5),  # wraps around the octave
    ("F# minor", "A major", 0.3),
    ("Gb major", "Eb minor", 0.3),
    ("Gb major", "F# minor", 0.2),
]


def test_key_index_canonical_order_and_enharmonics():
    assert [key_index(name) for name in KEY_NAMES] == list(range(24))
    assert key_index("C major") == 0
    assert key_index("A minor") == 21
    assert key_index("Db major") == key_index("C# major") == 1
    assert key_index("bb minor") == key_index("A# minor") == 22
    assert key_index("Cb major") == key_index("B major") == 11
    assert key_index("E# min") == key_index("F minor") == 17
    for bad in ("H major", "C", "C dorian", "C## major"):
        with pytest.raises(ValueError, match="key name"):
            key_index(bad)


@pytest.mark.parametrize(("reference", "estimate", "expected"), KEY_CASES)
def test_mirex_key_score_hand_cases(reference, estimate, expected):
    score = mirex_key_score(
        torch.tensor([key_index(estimate)]), torch.tensor([key_index(reference)])
    )
    assert score.item() == pytest.approx(expected)


def test_mirex_key_score_matches_mir_eval_on_all_pairs():
    mir_eval_key = pytest.importorskip("mir_eval.key")
    pred, target = torch.meshgrid(torch.arange(24), torch.arange(24), indexing="ij")
    ours = mirex_key_score(pred.flatten(), target.flatten())
    theirs = [
        mir_eval_key.weighted_score(KEY_NAMES[t], KEY_NAMES[p])
        for p, t in zip(pred.flatten().tolist(), target.flatten().tolist(), strict=True)
    ]
    torch.testing.assert_close(ours, torch.tensor(theirs, dtype=torch.float32))


def test_mirex_metric_maps_a_sorted_vocabulary():
    names = sorted(KEY_NAMES)  # e.g. the demo's vocabulary: "A major", "A minor", "A# major", ...
    reference = [("C major", "G major"), ("A minor", "C major"), ("E minor", "E minor")]
    target = torch.tensor([names.index(r) for r, _ in reference])
    pred = torch.tensor([names.index(e) for _, e in reference])
    metric = MirexKeyScore(names)
    metric.update(torch.nn.functional.one_hot(pred, 24).float(), target)
    assert metric.compute().item() == pytest.approx((0.5 + 0.3 + 1.0) / 3)
    collection = key_metrics(names).clone(prefix="test/")
    collection.update(torch.nn.functional.one_hot(pred, 24).float(), target)
    result = collection.compute()
    assert result["test/accuracy"].item() == pytest.approx(1 / 3)
    assert result["test/mirex_key"].item() == pytest.approx(0.6)


def test_classification_metrics_micro_and_macro():
    target = torch.tensor([0, 0, 0, 1, 2, 2])
    pred = torch.tensor([0, 0, 1, 1, 0, 2])
    metrics = classification_metrics(4)
    metrics.update(torch.nn.functional.one_hot(pred, 4).float(), target)
    result = metrics.compute()
    assert result["accuracy"].item() == pytest.approx(4 / 6)
    assert result["macro_accuracy"].item() == pytest.approx(
        (2 / 3 + 1 + 1 / 2) / 3
    )  # class 3 absent


def test_regression_metrics_per_output_and_mean():
    torch.manual_seed(0)
    target = torch.randn(50, 2)
    preds = target + torch.tensor([0.1, 0.5]) * torch.randn(50, 2)
    metrics = regression_metrics(2, ["arousal", "valence"]).clone(prefix="val/")
    metrics.update(preds, target)
    result = metrics.compute()
    r2 = 1 - ((target - preds) ** 2).sum(0) / ((target - target.mean(0)) ** 2).sum(0)
    assert set(result) == {"val/r2", "val/r2_arousal", "val/r2_valence"}
    assert result["val/r2_arousal"].item() == pytest.approx(r2[0].item(), abs=1e-5)
    assert result["val/r2_valence"].item() == pytest.approx(r2[1].item(), abs=1e-5)
    assert result["val/r2"].item() == pytest.approx(r2.mean().item(), abs=1e-5)
    single = regression_metrics(1)
    single.update(preds[:, :1], target[:, :1])
    assert single.compute()["r2_0"].item() == pytest.approx(r2[0].item(), abs=1e-5)


def test_task_metrics_refuses_key_score_for_other_tasks():
    with pytest.raises(ValueError, match="24-class"):
        task_metrics("multiclass", 10, "mirex_key")


def _collection_values(task, preds, labels, metric="default", names=None):
    collection = task_metrics(task, preds.shape[-1], metric, names)
    collection.update(preds, labels.long() if task == "multilabel" else labels)
    return {k: v.item() for k, v in collection.compute().items()}


@pytest.mark.parametrize("task", ["multilabel", "multiclass", "regression", "key"])
def test_search_scorer_agrees_with_the_metric_collections(task):
    torch.manual_seed(0)
    metric, names = ("mirex_key", sorted(KEY_NAMES)) if task == "key" else ("default", None)
    task = "multiclass" if task == "key" else task
    num = 24 if metric == "mirex_key" else 5
    preds = torch.randn(300, num)
    if task == "multilabel":
        labels = (torch.rand(300, num) < 0.3).float()
    elif task == "multiclass":
        labels = torch.randint(0, num, (300,))
    else:
        labels = preds + torch.randn(300, num)
    summary, per_class = score_predictions(task, preds, labels, metric, names)
    expected = _collection_values(task, preds, labels, metric, names)
    assert set(expected) <= set(summary)
    for name, value in expected.items():
        assert summary[name] == pytest.approx(value, abs=1e-5), name
    assert all(len(values) == num for values in per_class.values())


def test_search_scorer_leaves_undefined_tags_out():
    labels = torch.tensor([[1, 0, 1], [0, 0, 1], [1, 0, 1], [0, 0, 1]]).float()
    preds = torch.tensor([[0.9, 0.1, 0.5], [0.2, 0.3, 0.4], [0.8, 0.2, 0.3], [0.1, 0.4, 0.2]])
    summary, per_class = score_predictions("multilabel", preds, labels)
    assert per_class["roc_auc"][0] == 1.0
    assert math.isnan(per_class["roc_auc"][1])
    assert math.isnan(per_class["roc_auc"][2])
    assert math.isnan(per_class["pr_auc"][1])
    assert per_class["pr_auc"][2] == 1.0
    assert summary["roc_auc"] == 1.0
    assert summary["pr_auc"] == 1.0
