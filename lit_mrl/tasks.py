"""One table of task knowledge that every stage reads: metrics per task type.

A downstream task is one of three types (``multilabel``, ``multiclass``, ``regression``)
plus a metric option: ``mirex_key`` scores 24-class key classification by the MIREX
weighted key score instead of plain accuracy. For each (type, option) the table says
which validation metrics rank probe configs (the first is the primary metric: early
stopping, selection, the online probe's chart), which metrics a report shows, and their
display names. The probe search, the online probe, the report and the demo read it here
instead of each keeping its own copy of the rule.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from lit_mrl.formats.keys import key_index

TaskType = Literal["multilabel", "multiclass", "regression"]
MetricOption = Literal["default", "mirex_key"]
KEY_CLASSES = 24  # 12 tonics x major/minor: the classes mirex_key scores


@dataclass(frozen=True)
class TaskMetrics:
    """What one (task type, metric option) is scored and reported by.

    Args:
        ranking: validation metrics that rank configs, most important first (later ones
            break ties); ``ranking[0]`` is the primary metric.
        report: the metrics a report row shows (regression: one ``r2_<output>`` row per
            output, after the mean ``r2`` when there are several).
    """

    ranking: tuple[str, ...]
    report: tuple[str, ...]

    @property
    def primary(self) -> str:
        """The metric that early stopping and selection maximise."""
        return self.ranking[0]


TASK_METRICS: dict[tuple[str, str], TaskMetrics] = {
    ("multilabel", "default"): TaskMetrics(("roc_auc", "pr_auc"), ("roc_auc", "pr_auc")),
    ("multiclass", "default"): TaskMetrics(("accuracy", "macro_accuracy"), ("accuracy",)),
    ("multiclass", "mirex_key"): TaskMetrics(("mirex_key", "accuracy"), ("mirex_key", "accuracy")),
    ("regression", "default"): TaskMetrics(("r2",), ("r2",)),
}

METRIC_LABELS = {
    "roc_auc": "ROC-AUC",
    "pr_auc": "AP",
    "accuracy": "accuracy",
    "macro_accuracy": "macro accuracy",
    "mirex_key": "MIREX weighted",
    "r2": "R²",
}


def task_metrics(task: str, metric: str = "default") -> TaskMetrics:
    """The table's row for ``task`` scored with ``metric``.

    Raises:
        ValueError: a metric option the task type does not have (``mirex_key`` is for
            multiclass only).
    """
    if (task, metric) not in TASK_METRICS:
        raise ValueError(f"no metric {metric!r} for a {task} task")
    return TASK_METRICS[task, metric]


def check_task_metric(task: str, num_outputs: int, metric: str) -> None:
    """Refuse ``metric="mirex_key"`` for anything but 24-class classification."""
    if metric == "mirex_key" and (task != "multiclass" or num_outputs != KEY_CLASSES):
        raise ValueError(f"metric mirex_key needs 24-class multiclass, got {task} x {num_outputs}")


def ranking_metrics(task: str, metric: str = "default") -> tuple[str, ...]:
    """Validation metrics that rank configs, most important first."""
    return task_metrics(task, metric).ranking


def primary_metric(task: str, metric: str = "default") -> str:
    """The metric early stopping and selection maximise (and the online probe logs)."""
    return task_metrics(task, metric).primary


def report_metrics(task: str, metric: str, class_names: list[str]) -> list[str]:
    """The metric rows a report shows for one task (per-output rows for regression)."""
    if task == "regression":
        outputs = [f"r2_{name}" for name in class_names]
        return outputs if len(outputs) == 1 else ["r2", *outputs]
    return list(task_metrics(task, metric).report)


def metric_label(metric: str) -> str:
    """Display name of a metric key, e.g. ``"r2_arousal"`` -> ``"R² arousal"``."""
    if metric in METRIC_LABELS:
        return METRIC_LABELS[metric]
    if metric.startswith("r2_"):
        return f"R² {metric[3:]}"
    return metric


def is_key_vocabulary(task: str, class_names: list[str]) -> bool:
    """Whether the classes are the 24 major/minor keys (in any order)."""
    if task != "multiclass" or len(class_names) != KEY_CLASSES:
        return False
    try:
        return sorted(key_index(name) for name in class_names) == list(range(KEY_CLASSES))
    except ValueError:
        return False


def default_metric(task: str, class_names: list[str]) -> MetricOption:
    """The MIREX weighted key rule for a key vocabulary, else the task type's default."""
    return "mirex_key" if is_key_vocabulary(task, class_names) else "default"
