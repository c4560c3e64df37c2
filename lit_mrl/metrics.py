"""Downstream metrics: one implementation of each, used by every trainer and the search.

:func:`score_predictions` computes every metric of a task from predictions and labels
(torchmetrics' functionals where torchmetrics has the metric); :class:`TaskScore` is the
same function as a torchmetrics ``Metric`` for Lightning modules, so the probe search,
the Lightning ``ProbeModule`` and supervised validation report identical numbers.

- multilabel: macro ROC-AUC and average precision (``roc_auc``, ``pr_auc``); a tag whose
  metric is undefined in the split (no positive, or no negative for ROC-AUC) is left out
  of the mean and reported as NaN, as the paper's per-class results leave it blank;
- multiclass: top-1 ``accuracy`` and ``macro_accuracy`` (mean recall over the classes
  present); with ``metric="mirex_key"`` also the MIREX weighted key score;
- regression: ``r2`` (mean over outputs) and ``r2_<output>``.
"""

from __future__ import annotations

import math
import warnings
from typing import TYPE_CHECKING

import torch
from torch import Tensor
from torchmetrics import Metric
from torchmetrics.functional import r2_score
from torchmetrics.functional.classification import multilabel_auroc, multilabel_average_precision
from torchmetrics.utilities import dim_zero_cat

# the key names live in a torch-free module (data preparation needs them); re-exported here
from lit_mrl.formats.keys import KEY_NAMES as KEY_NAMES
from lit_mrl.formats.keys import PITCH_CLASS_NAMES as PITCH_CLASS_NAMES
from lit_mrl.formats.keys import key_index as key_index

# the metric rules per task type live in the task table; re-exported here
from lit_mrl.tasks import MetricOption, TaskType
from lit_mrl.tasks import check_task_metric as check_task_metric

if TYPE_CHECKING:
    from lightning import LightningModule

ProbeTask = TaskType
MetricName = MetricOption


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


BOUNDED_METRICS = ("accuracy", "macro_accuracy", "roc_auc", "pr_auc", "mirex_key")


def metric_range(name: str) -> tuple[float, float] | None:
    """The values metric ``name`` can take (R²: at most 1); None for a metric not ours."""
    if name in BOUNDED_METRICS:
        return 0.0, 1.0
    if name == "r2" or name.startswith("r2_"):
        return -math.inf, 1.0
    return None


def score_predictions(
    task: ProbeTask,
    preds: Tensor,
    labels: Tensor,
    metric: MetricName = "default",
    class_names: list[str] | None = None,
) -> tuple[dict[str, float], dict[str, list[float]]]:
    """Summary and per-class metrics of one set of predictions (see the module docstring).

    Args:
        task: the dataset's task type.
        preds: ``(N, K)`` logits (tags, classes) or values (regression).
        labels: ``(N, K)`` multi-hot, ``(N,)`` class indices or ``(N, K)`` values.
        metric: ``"mirex_key"`` adds ``mirex_key`` for 24-class key labels.
        class_names: key names in class-index order (for ``mirex_key``), output names
            (for regression).

    Returns:
        ``{name: value}`` and ``{name: per-class values}`` (NaN where undefined).
    """
    preds = preds.detach().float().cpu()
    labels = labels.detach().cpu()
    check_task_metric(task, preds.shape[-1], metric)
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
    if len(names) != preds.shape[-1]:
        raise ValueError(f"{len(names)} output names for {preds.shape[-1]} outputs")
    r2 = r2_score(preds, labels, multioutput="raw_values").reshape(-1)  # (K,)
    summary = {"r2": r2.mean().item()}
    summary.update({f"r2_{name}": value.item() for name, value in zip(names, r2, strict=True)})
    return summary, {"r2": r2.tolist()}


def primary_scores(
    task: ProbeTask,
    preds: Tensor,
    labels: Tensor,
    metric: MetricName = "default",
    class_names: list[str] | None = None,
) -> Tensor:
    """The primary metric (:func:`lit_mrl.tasks.primary_metric`) of many members at once.

    The value :func:`score_predictions` gives for each member's predictions, up to float
    rounding (computed in float64 here): what early stopping compares every few steps.

    Args:
        task: the dataset's task type.
        preds: ``(E, N, K)`` logits or values of ``E`` members, on any device.
        labels: ``(N, K)`` multi-hot, ``(N,)`` class indices or ``(N, K)`` values.
        metric: ``"mirex_key"`` ranks key classes by the MIREX score.
        class_names: key names in class-index order (for ``mirex_key``).

    Returns:
        ``(E,)`` float64 scores on ``preds``' device.
    """
    labels = labels.to(preds.device)
    if task == "multilabel":
        return _stacked_roc_auc(preds, labels)
    if task == "regression":
        preds, labels = preds.double(), labels.double()
        residual = (labels - preds).pow(2).sum(1)  # (E, K)
        spread = (labels - labels.mean(0)).pow(2).sum(0)  # (K,)
        return (1.0 - residual / spread).mean(-1)
    pred = preds.argmax(-1)  # (E, N)
    if metric == "mirex_key":
        mapping = key_class_map(class_names) if class_names is not None else torch.arange(24)
        mapping = mapping.to(preds.device)
        return mirex_key_score(mapping[pred], mapping[labels].expand_as(pred)).double().mean(-1)
    return (pred == labels).double().mean(-1)


def _stacked_roc_auc(preds: Tensor, labels: Tensor) -> Tensor:
    """``(E,)`` macro ROC-AUC of ``(E, N, K)`` scores: tied scores count one half.

    Scores are ranked as torchmetrics ranks them: through a float32 sigmoid unless a
    member's scores all lie in [0, 1]. A tag without positives or negatives is left out.
    """
    preds = preds.float()
    outside = ((preds < 0) | (preds > 1)).flatten(1).any(1).view(-1, 1, 1)
    scores = torch.where(outside, preds.sigmoid(), preds).transpose(1, 2)  # (E, K, N)
    values, order = scores.sort(dim=-1)
    positive = labels.T.bool().expand_as(scores).gather(-1, order).double()
    n = scores.shape[-1]
    # mid-rank of each run of equal scores: (first + last) / 2 + 1, 1-based
    index = torch.arange(n, device=scores.device).expand_as(values)
    starts = torch.ones_like(values, dtype=torch.bool)
    starts[..., 1:] = values[..., 1:] != values[..., :-1]
    first = torch.where(starts, index, 0).cummax(-1).values
    ends = torch.ones_like(starts)
    ends[..., :-1] = starts[..., 1:]
    last = torch.where(ends, index, n - 1).flip(-1).cummin(-1).values.flip(-1)
    ranks = (first + last).double() / 2 + 1
    pos = labels.sum(0).double()  # (K,)
    neg = n - pos
    auc = ((ranks * positive).sum(-1) - pos * (pos + 1) / 2) / (pos * neg)  # (E, K)
    defined = (pos > 0) & (neg > 0)
    return torch.where(defined, auc, torch.nan).nanmean(-1)


class TaskScore(Metric):
    """:func:`score_predictions` as a torchmetrics ``Metric`` (predictions are gathered).

    ``compute()`` returns the summary dict, e.g. ``{"roc_auc": ..., "pr_auc": ...}``.

    Args:
        task: the dataset's task type.
        num_outputs: tags, classes or regression outputs K.
        metric: ``"mirex_key"`` adds the key score (24 classes only).
        class_names: label names in class-index order (keys for ``mirex_key``,
            output names for regression).
    """

    full_state_update = False

    def __init__(
        self,
        task: ProbeTask,
        num_outputs: int,
        metric: MetricName = "default",
        class_names: list[str] | None = None,
    ) -> None:
        super().__init__()
        check_task_metric(task, num_outputs, metric)
        self.task, self.num_outputs = task, num_outputs
        self.metric, self.class_names = metric, class_names
        self.add_state("preds", default=[], dist_reduce_fx="cat")
        self.add_state("labels", default=[], dist_reduce_fx="cat")

    def update(self, preds: Tensor, labels: Tensor) -> None:
        """Add ``(B, K)`` predictions and their labels."""
        self.preds.append(preds.detach().float())
        self.labels.append(labels.detach())

    def compute(self) -> dict[str, Tensor]:
        summary, _ = score_predictions(
            self.task,
            dim_zero_cat(self.preds),
            dim_zero_cat(self.labels),
            self.metric,
            self.class_names,
        )
        return {name: torch.tensor(value) for name, value in summary.items()}

    def log_epoch(self, module: LightningModule, stage: str) -> None:
        """Log ``<stage>/<metric>`` for the epoch through ``module`` and reset (no-op if empty)."""
        if self.update_count == 0:
            return
        module.log_dict({f"{stage}/{name}": value for name, value in self.compute().items()})
        self.reset()
