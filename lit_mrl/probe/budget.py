"""What a probe search spends: the step budget, successive-halving rungs, CPU threads."""

from __future__ import annotations

import math
import os
from dataclasses import dataclass

from lit_mrl.probe.training import Pruning


@dataclass(frozen=True)
class Budget:
    """How long probes train.

    Args:
        steps: most optimisation steps (warm-up plus cosine decay to 0).
        warmup_steps: steps of linear warm-up.
        batch_size: embeddings per minibatch.
        eval_every: steps between validation checks (early stopping).
        patience: checks without any improvement before a probe stops; 0 trains every
            probe for ``steps`` steps and keeps its last weights.
    """

    steps: int
    warmup_steps: int
    batch_size: int
    eval_every: int
    patience: int

    @classmethod
    def for_data(
        cls,
        num_train: int,
        batch_size: int | None = None,
        epochs: int = 100,
        min_steps: int = 1000,
        max_steps: int = 20000,
        steps: int | None = None,
        warmup_steps: int | None = None,
        patience: int = 10,
    ) -> Budget:
        """A budget scaled to the data: ``epochs`` passes, within ``[min_steps, max_steps]``.

        ``steps`` fixes the budget instead; warm-up defaults to a tenth of it (at most
        1000, the paper's); the validation check runs 20 times per budget at least. No
        ``batch_size``: :func:`default_batch_size` (small data gets small batches).
        """
        batch_size = batch_size or default_batch_size(num_train)
        if steps is None:
            steps = min(max(epochs * math.ceil(num_train / batch_size), min_steps), max_steps)
        warmup = min(1000, steps // 10) if warmup_steps is None else warmup_steps
        return cls(steps, warmup, batch_size, max(1, min(100, steps // 20)), patience)


def default_batch_size(num_train: int, largest: int = 256, smallest: int = 32) -> int:
    """``largest``, halved while an epoch of ``num_train`` items holds under 10 minibatches.

    Never below ``smallest``. At 370 training items a batch of 256 is 2 steps per epoch,
    so the old budget (at least 2000 steps) made 1384 passes; at 32 it is 12 steps per
    epoch and 100 passes in 1200 steps, with the selected probe's validation score
    within seed noise and under a quarter of the time on the demo grid
    (``bench/README.md``). MTT-sized data (19k items) keeps 256.
    """
    size = largest
    while size > smallest and math.ceil(num_train / size) < 10:
        size //= 2
    return max(size, smallest)


@dataclass(frozen=True)
class PruneRule:
    """Successive halving relative to a budget: rungs at ``first``, ``first * eta``, ...

    Args:
        margin: a member more than this far behind its ensemble's best (in the primary
            metric's units: ROC-AUC, accuracy, R²) at a rung leaves.
        keep_fraction: the share of the members still training that always stays.
        first: the first rung as a fraction of the budget's steps.
        eta: the factor between rungs.
    """

    margin: float = 0.02
    keep_fraction: float = 0.5
    first: float = 1 / 27
    eta: float = 3.0

    def for_budget(self, budget: Budget) -> Pruning:
        """The rungs as evaluation steps of ``budget`` (before its last step)."""
        rungs, fraction = [], self.first
        while fraction < 1:
            step = budget.eval_every * max(
                1, math.ceil(fraction * budget.steps / budget.eval_every)
            )
            if step < budget.steps and step not in rungs:
                rungs.append(step)
            fraction *= self.eta
        return Pruning(tuple(rungs), self.margin, self.keep_fraction)


def choose_threads() -> int:
    """Threads for a CPU search: the usable cores minus those other processes keep busy.

    The cores are those of ``os.sched_getaffinity`` (a container's or ``taskset``'s
    share, not the host's); the busy ones are the 1-minute load average, rounded. At
    least one thread, at most one per core.
    """
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    busy = round(os.getloadavg()[0]) if hasattr(os, "getloadavg") else 0
    return max(1, min(cores or 1, (cores or 1) - busy))
