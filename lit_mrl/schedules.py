"""Learning-rate schedules (take an optimizer first, so configs can inject them)."""

import math

from torch.optim import Optimizer
from torch.optim.lr_scheduler import CosineAnnealingLR, LambdaLR, LRScheduler, OneCycleLR


class WarmupCosineLR(LambdaLR):
    """Linear warm-up from 0 to the optimizer's LR, then cosine decay to ``final_ratio``.

    Stepped once per optimisation step. With ``total_steps=-1`` the module fills in
    the trainer's estimated number of steps before training starts.

    Args:
        optimizer: the optimizer whose LR is scheduled.
        warmup_steps: steps of linear warm-up.
        total_steps: warm-up plus decay steps; -1 means "the whole run".
        final_ratio: LR at the end, as a fraction of the peak LR.
    """

    def __init__(
        self,
        optimizer: Optimizer,
        warmup_steps: int = 1000,
        total_steps: int = -1,
        final_ratio: float = 0.0,
    ) -> None:
        self.warmup_steps = warmup_steps
        self.total_steps = total_steps
        self.final_ratio = final_ratio
        super().__init__(optimizer, self.factor)

    def factor(self, step: int) -> float:
        """LR multiplier at ``step`` (:func:`warmup_cosine_factor` with this schedule's settings)."""
        return warmup_cosine_factor(step, self.warmup_steps, self.total_steps, self.final_ratio)


def warmup_cosine_factor(
    step: int, warmup_steps: int, total_steps: int, final_ratio: float = 0.0
) -> float:
    """LR multiplier of :class:`WarmupCosineLR` at ``step``.

    Raises:
        ValueError: the decay starts while ``total_steps`` is still -1 (nothing filled
            in the run's length).
    """
    if step < warmup_steps:
        return (step + 1) / (warmup_steps + 1)
    if step == warmup_steps:
        return 1.0  # the peak, whatever the horizon (schedulers evaluate step 0 when built)
    if total_steps < 0:
        raise ValueError(
            "WarmupCosineLR reached the end of its warm-up with total_steps=-1: give "
            "total_steps, or train through a lit_mrl module that fills in the run's length"
        )
    total = max(total_steps, warmup_steps + 1)
    progress = min(1.0, (step - warmup_steps) / (total - warmup_steps))
    cosine = 0.5 * (1.0 + math.cos(math.pi * progress))
    return final_ratio + (1.0 - final_ratio) * cosine


def schedule_horizon(scheduler: LRScheduler) -> int | None:
    """Steps after which ``scheduler`` stops changing the LR, for schedules that end.

    ``None`` for schedules without an end (constant, step, exponential, ...).
    """
    if isinstance(scheduler, WarmupCosineLR):
        return max(scheduler.total_steps, scheduler.warmup_steps)
    if isinstance(scheduler, CosineAnnealingLR):
        return scheduler.T_max
    if isinstance(scheduler, OneCycleLR):
        return scheduler.total_steps
    return None
