import pytest

from lit_mrl.formats.keys import KEY_NAMES
from lit_mrl.tasks import (
    check_task_metric,
    default_metric,
    metric_label,
    primary_metric,
    ranking_metrics,
    report_metrics,
)


def test_every_task_type_ranks_by_its_primary_metric_first():
    assert ranking_metrics("multilabel") == ("roc_auc", "pr_auc")
    assert ranking_metrics("multiclass") == ("accuracy", "macro_accuracy")
    assert ranking_metrics("multiclass", "mirex_key") == ("mirex_key", "accuracy")
    assert primary_metric("regression") == "r2"
    with pytest.raises(ValueError, match="no metric 'mirex_key' for a multilabel task"):
        primary_metric("multilabel", "mirex_key")


def test_report_rows_per_task():
    assert report_metrics("multilabel", "default", []) == ["roc_auc", "pr_auc"]
    assert report_metrics("multiclass", "default", ["a", "b"]) == ["accuracy"]
    assert report_metrics("multiclass", "mirex_key", list(KEY_NAMES)) == ["mirex_key", "accuracy"]
    assert report_metrics("regression", "default", ["bpm"]) == ["r2_bpm"]
    assert report_metrics("regression", "default", ["arousal", "valence"]) == [
        "r2", "r2_arousal", "r2_valence",
    ]  # fmt: skip
    assert metric_label("r2_arousal") == "R² arousal"
    assert metric_label("pr_auc") == "AP"


def test_the_mirex_rule_applies_to_24_key_classes_only():
    assert default_metric("multiclass", sorted(KEY_NAMES)) == "mirex_key"  # any order
    assert default_metric("multiclass", [f"p{i}" for i in range(24)]) == "default"
    assert default_metric("multilabel", list(KEY_NAMES)) == "default"
    check_task_metric("multiclass", 24, "mirex_key")
    with pytest.raises(ValueError, match="24-class multiclass"):
        check_task_metric("multiclass", 12, "mirex_key")
