import math

import pytest
import torch
from torchmetrics.functional import r2_score
from torchmetrics.functional.classification import (
    multiclass_accuracy,
    multilabel_auroc,
    multilabel_average_precision,
)

from lit_mrl.metrics import (
    KEY_NAMES,
    TaskScore,
    key_class_map,
    key_index,
    mirex_key_score,
    score_predictions,
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
    import mir_eval.key

    pred, target = torch.meshgrid(torch.arange(24), torch.arange(24), indexing="ij")
    ours = mirex_key_score(pred.flatten(), target.flatten())
    theirs = [
        mir_eval.key.weighted_score(KEY_NAMES[t], KEY_NAMES[p])
        for p, t in zip(pred.flatten().tolist(), target.flatten().tolist(), strict=True)
    ]
    torch.testing.assert_close(ours, torch.tensor(theirs, dtype=torch.float32))


def test_key_score_maps_a_sorted_vocabulary():
    names = sorted(KEY_NAMES)  # e.g. the demo's vocabulary: "A major", "A minor", "A# major", ...
    reference = [("C major", "G major"), ("A minor", "C major"), ("E minor", "E minor")]
    target = torch.tensor([names.index(r) for r, _ in reference])
    pred = torch.tensor([names.index(e) for _, e in reference])
    summary, _ = score_predictions(
        "multiclass", torch.nn.functional.one_hot(pred, 24).float(), target, "mirex_key", names
    )
    assert summary["accuracy"] == pytest.approx(1 / 3)
    assert summary["mirex_key"] == pytest.approx((0.5 + 0.3 + 1.0) / 3)
    assert key_class_map(names)[names.index("C major")] == 0


def test_classification_micro_and_macro_accuracy():
    target = torch.tensor([0, 0, 0, 1, 2, 2])
    pred = torch.tensor([0, 0, 1, 1, 0, 2])
    summary, per_class = score_predictions(
        "multiclass", torch.nn.functional.one_hot(pred, 4).float(), target
    )
    assert summary["accuracy"] == pytest.approx(4 / 6)
    assert summary["macro_accuracy"] == pytest.approx((2 / 3 + 1 + 1 / 2) / 3)  # 3 absent
    assert math.isnan(per_class["accuracy"][3])


def test_regression_r2_per_output_and_mean():
    torch.manual_seed(0)
    target = torch.randn(50, 2)
    preds = target + torch.tensor([0.1, 0.5]) * torch.randn(50, 2)
    summary, _ = score_predictions("regression", preds, target, class_names=["arousal", "valence"])
    r2 = 1 - ((target - preds) ** 2).sum(0) / ((target - target.mean(0)) ** 2).sum(0)
    assert set(summary) == {"r2", "r2_arousal", "r2_valence"}
    assert summary["r2_arousal"] == pytest.approx(r2[0].item(), abs=1e-5)
    assert summary["r2_valence"] == pytest.approx(r2[1].item(), abs=1e-5)
    assert summary["r2"] == pytest.approx(r2.mean().item(), abs=1e-5)


def test_key_score_is_refused_for_other_tasks():
    with pytest.raises(ValueError, match="24-class"):
        TaskScore("multiclass", 10, "mirex_key")


@pytest.mark.parametrize("task", ["multilabel", "multiclass", "regression"])
def test_scores_agree_with_torchmetrics_where_every_class_is_defined(task):
    torch.manual_seed(0)
    preds = torch.randn(300, 5)
    if task == "multilabel":
        labels = (torch.rand(300, 5) < 0.3).long()
        expected = {
            "roc_auc": multilabel_auroc(preds, labels, 5, average="macro"),
            "pr_auc": multilabel_average_precision(preds, labels, 5, average="macro"),
        }
    elif task == "multiclass":
        labels = torch.randint(0, 5, (300,))
        expected = {
            "accuracy": multiclass_accuracy(preds, labels, 5, average="micro"),
            "macro_accuracy": multiclass_accuracy(preds, labels, 5, average="macro"),
        }
    else:
        labels = preds + torch.randn(300, 5)
        expected = {"r2": r2_score(preds, labels)}
    summary, per_class = score_predictions(task, preds, labels)
    for name, value in expected.items():
        assert summary[name] == pytest.approx(value.item(), abs=1e-5), name
    assert all(len(values) == 5 for values in per_class.values())


def test_the_lightning_metric_is_the_same_function():
    torch.manual_seed(0)
    preds, labels = torch.randn(100, 4), (torch.rand(100, 4) < 0.3).long()
    metric = TaskScore("multilabel", 4)
    for chunk in range(4):  # batches accumulate
        metric.update(preds[25 * chunk : 25 * chunk + 25], labels[25 * chunk : 25 * chunk + 25])
    summary, _ = score_predictions("multilabel", preds, labels)
    computed = metric.compute()
    assert {k: v.item() for k, v in computed.items()} == pytest.approx(summary)


def test_undefined_tags_are_left_out_of_the_macro_mean():
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
