"""Metric collections per task type, built once and cloned per stage."""

import warnings
from typing import Literal

import torch
from torch import Tensor
from torchmetrics import Metric, MetricCollection, R2Score
from torchmetrics.classification import (
    MulticlassAccuracy,
    MultilabelAUROC,
    MultilabelAveragePrecision,
)
from torchmetrics.functional.classification import multilabel_auroc, multilabel_average_precision

# the key names live in a torch-free module (data preparation needs them); re-exported here
from lit_mrl.data.keys import KEY_NAMES as KEY_NAMES
from lit_mrl.data.keys import PITCH_CLASS_NAMES as PITCH_CLASS_NAMES
from lit_mrl.data.keys import key_index as key_index


def tagging_metrics(num_tags: int) -> MetricCollection:
    """Macro ROC-AUC and average precision over ``num_tags`` tags (the paper's metrics)."""
    return MetricCollection(
        {
            "roc_auc": MultilabelAUROC(num_labels=num_tags, average="macro"),
            "pr_auc": MultilabelAveragePrecision(num_labels=num_tags, average="macro"),
        }
    )


def classification_metrics(num_classes: int) -> MetricCollection:
    """Accuracy (micro, i.e. top-1: the paper's GTZAN/NSynth number) and macro accuracy.

    Macro accuracy is the mean per-class recall over the classes present in the targets.
    """
    return MetricCollection(
        {
            "accuracy": MulticlassAccuracy(num_classes=num_classes, average="micro"),
            "macro_accuracy": MulticlassAccuracy(num_classes=num_classes, average="macro"),
        }
    )


class OutputR2(R2Score):
    """R² per regression output and their mean, as one dict.

    Computes ``{"r2": mean, "r2_<name>": value, ...}``; a
    :class:`~torchmetrics.MetricCollection` flattens the dict into its keys.

    Args:
        output_names: a name per output (default ``"0"``, ``"1"``, ...).
    """

    def __init__(self, output_names: list[str]) -> None:
        super().__init__(multioutput="raw_values")
        self.output_names = list(output_names)

    def update(self, preds: Tensor, target: Tensor) -> None:
        """Add ``(N, K)`` predictions and targets."""
        if preds.shape[-1] != len(self.output_names):
            raise ValueError(
                f"predictions have {preds.shape[-1]} outputs but the metric was built for "
                f"{len(self.output_names)} ({self.output_names})"
            )
        super().update(preds, target)

    def compute(self) -> dict[str, Tensor]:
        values = super().compute().reshape(-1)  # (K,)
        named = {f"r2_{name}": value for name, value in zip(self.output_names, values, strict=True)}
        return {"r2": values.mean(), **named}


def regression_metrics(num_outputs: int, output_names: list[str] | None = None) -> MetricCollection:
    """R² per output (``r2_<name>``) and their unweighted mean (``r2``, the search's criterion).

    Args:
        num_outputs: regression outputs K.
        output_names: a name per output, e.g. ``["arousal", "valence"]``.
    """
    names = output_names if output_names is not None else [str(i) for i in range(num_outputs)]
    if len(names) != num_outputs:
        raise ValueError(f"{len(names)} output names for {num_outputs} outputs")
    return MetricCollection({"r2": OutputR2(names)})


def key_class_map(class_names: list[str]) -> Tensor:
    """``(24,)`` canonical key index of each class, for labels in another order (e.g. sorted)."""
    indices = [key_index(name) for name in class_names]
    if sorted(indices) != list(range(24)):
        raise ValueError(f"the class names are not the 24 major/minor keys: {class_names}")
    return torch.tensor(indices)


def mirex_key_score(pred: Tensor, target: Tensor) -> Tensor:
    """MIREX weighted key score of each item, following ``mir_eval.key.weighted_score``.

    1.0 same key; 0.5 same mode and the predicted tonic a perfect fifth ABOVE the true
    one (7 semitones up; the fifth below scores 0, as in mir_eval); 0.3 relative key
    (true major -> predicted minor 9 semitones up, true minor -> predicted major 3 up);
    0.2 parallel key (same tonic, other mode); 0 otherwise.

    Args:
        pred: ``(N,)`` predicted canonical key indices (see :data:`KEY_NAMES`).
        target: ``(N,)`` true canonical key indices.

    Returns:
        ``(N,)`` float scores.
    """
    interval = (pred % 12 - target % 12) % 12  # semitones from the true tonic up to the predicted
    pred_minor, true_minor = pred >= 12, target >= 12
    same_mode = pred_minor == true_minor
    relative = ~same_mode & torch.where(true_minor, interval == 3, interval == 9)
    score = torch.zeros(pred.shape, dtype=torch.float32, device=pred.device)
    score = torch.where(~same_mode & (interval == 0), 0.2, score)
    score = torch.where(relative, 0.3, score)
    score = torch.where(same_mode & (interval == 7), 0.5, score)
    return torch.where(same_mode & (interval == 0), 1.0, score)


class MirexKeyScore(Metric):
    """Mean MIREX weighted key score (see :func:`mirex_key_score`).

    Args:
        class_names: key name of each class index, when the classes are not in the
            canonical order of :data:`KEY_NAMES` (e.g. a sorted vocabulary).
    """

    higher_is_better = True
    full_state_update = False

    def __init__(self, class_names: list[str] | None = None) -> None:
        super().__init__()
        mapping = key_class_map(class_names) if class_names is not None else torch.arange(24)
        self.register_buffer("class_map", mapping, persistent=False)
        self.add_state("total_score", torch.tensor(0.0), dist_reduce_fx="sum")
        self.add_state("count", torch.tensor(0), dist_reduce_fx="sum")

    def update(self, preds: Tensor, target: Tensor) -> None:
        """Add ``(N, 24)`` class scores (or ``(N,)`` class indices) and ``(N,)`` targets."""
        if preds.dim() == 2:
            preds = preds.argmax(-1)
        scores = mirex_key_score(self.class_map[preds], self.class_map[target])
        self.total_score += scores.sum()
        self.count += scores.numel()

    def compute(self) -> Tensor:
        return self.total_score / self.count


def key_metrics(class_names: list[str] | None = None) -> MetricCollection:
    """Accuracy and the MIREX weighted key score (``mirex_key``) over the 24 keys.

    Args:
        class_names: see :class:`MirexKeyScore`.
    """
    return MetricCollection(
        {
            "accuracy": MulticlassAccuracy(num_classes=24, average="micro"),
            "mirex_key": MirexKeyScore(class_names),
        }
    )


def task_metrics(
    task: Literal["multilabel", "multiclass", "regression"],
    num_outputs: int,
    metric: Literal["default", "mirex_key"] = "default",
    class_names: list[str] | None = None,
) -> MetricCollection:
    """The metric collection of a probe task: tagging, classification, key or regression.

    Args:
        task: the dataset's task type.
        num_outputs: tags, classes or regression outputs K.
        metric: ``"mirex_key"`` adds the key score (24 classes only).
        class_names: label names in class-index order (keys for ``mirex_key``,
            output names for regression).
    """
    if metric == "mirex_key":
        if task != "multiclass" or num_outputs != 24:
            raise ValueError(
                f"metric mirex_key needs 24-class multiclass, got {task} x {num_outputs}"
            )
        return key_metrics(class_names)
    if task == "multilabel":
        return tagging_metrics(num_outputs)
    if task == "multiclass":
        return classification_metrics(num_outputs)
    return regression_metrics(num_outputs, class_names)


def score_predictions(
    task: Literal["multilabel", "multiclass", "regression"],
    preds: Tensor,
    labels: Tensor,
    metric: Literal["default", "mirex_key"] = "default",
    class_names: list[str] | None = None,
) -> tuple[dict[str, float], dict[str, list[float]]]:
    """Summary and per-class metrics of one probe on one split (the probe search's scorer).

    The same definitions as :func:`task_metrics`, with one difference for tagging: a tag
    whose ROC-AUC (no positives or no negatives) or AP (no positives) is undefined in
    this split is left out of the macro mean and reported as NaN, as the paper's results
    CSVs leave such cells blank (torchmetrics' macro counts them as 0).

    Args:
        task: the dataset's task type.
        preds: ``(N, K)`` logits (tags, classes) or values (regression).
        labels: ``(N, K)`` multi-hot, ``(N,)`` class indices or ``(N, K)`` values.
        metric: ``"mirex_key"`` adds ``mirex_key`` for 24-class key labels.
        class_names: key names in class-index order (for ``mirex_key``), output names
            (for regression).

    Returns:
        ``{name: value}`` (e.g. ``roc_auc``, ``pr_auc``; ``accuracy``, ``macro_accuracy``,
        ``mirex_key``; ``r2``, ``r2_<output>``) and ``{name: per-class values}``.
    """
    preds = preds.detach().float().cpu()
    labels = labels.detach().cpu()
    if task == "multilabel":
        return _score_tags(preds, labels.long())
    if task == "regression":
        return _score_regression(preds, labels.float(), class_names)
    pred, num_classes = preds.argmax(-1), preds.shape[-1]
    counts = torch.bincount(labels, minlength=num_classes).float()
    hits = torch.bincount(labels[pred == labels], minlength=num_classes).float()
    per_class = torch.where(counts > 0, hits / counts.clamp(min=1), torch.nan)
    summary = {
        "accuracy": (pred == labels).float().mean().item(),
        "macro_accuracy": per_class.nanmean().item(),
    }
    if metric == "mirex_key":
        mapping = key_class_map(class_names) if class_names is not None else torch.arange(24)
        summary["mirex_key"] = mirex_key_score(mapping[pred], mapping[labels]).mean().item()
    return summary, {"accuracy": per_class.tolist()}


def _score_tags(preds: Tensor, labels: Tensor) -> tuple[dict[str, float], dict[str, list[float]]]:
    num_tags, positives = preds.shape[-1], labels.sum(0)
    with warnings.catch_warnings():  # undefined tags are masked below
        warnings.simplefilter("ignore", UserWarning)
        roc_auc = multilabel_auroc(preds, labels, num_tags, average=None)
        pr_auc = multilabel_average_precision(preds, labels, num_tags, average=None)
    roc_auc = torch.where((positives > 0) & (positives < len(labels)), roc_auc, torch.nan)
    pr_auc = torch.where(positives > 0, pr_auc, torch.nan)
    summary = {"roc_auc": roc_auc.nanmean().item(), "pr_auc": pr_auc.nanmean().item()}
    return summary, {"roc_auc": roc_auc.tolist(), "pr_auc": pr_auc.tolist()}


def _score_regression(
    preds: Tensor, labels: Tensor, output_names: list[str] | None
) -> tuple[dict[str, float], dict[str, list[float]]]:
    names = output_names if output_names is not None else [str(i) for i in range(preds.shape[-1])]
    residual = (labels - preds).pow(2).sum(0)
    total = (labels - labels.mean(0)).pow(2).sum(0)
    r2 = 1.0 - residual / total  # (K,)
    summary = {"r2": r2.mean().item()}
    summary.update({f"r2_{name}": value.item() for name, value in zip(names, r2, strict=True)})
    return summary, {"r2": r2.tolist()}
