"""Training a :class:`~lit_mrl.probe.ensemble.StackedMLP`: every member as if alone.

A member's run depends only on its own config and seed, never on which other members
share its ensemble: its minibatches come from :class:`~lit_mrl.probe.data.ShuffledBatches`
with its seed, its dropout draws from a generator with its seed (members that share a
seed share the draws, each keeping units with its own probability), and it stops on
its own early-stopping rule, keeping its best validation weights. So a config searched
among 31 others ends exactly where it would trained alone (float rounding aside), the
search's first-seed run of the selected config *is* that config's first-seed run, and
the other seeds can be trained together as one more ensemble.

Members leave the ensemble when they stop, so the ones still training do not pay for
them. With :class:`Pruning`, members far behind the ensemble's best at a rung also leave
(successive halving); pruned members are marked in the results.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import torch
from torch import Tensor

from lit_mrl.probe.data import EmbeddingTensors, ShuffledBatches
from lit_mrl.probe.ensemble import StackedAdam, StackedMLP, loss_gradient, select_flat, unflatten
from lit_mrl.schedules import warmup_cosine_factor


@dataclass
class EarlyStopping:
    """Keep each member's weights at its best validation score; stop a member when it stalls.

    Args:
        score: maps the stacked members to ``(E,)`` validation scores, higher better.
        every: steps between evaluations.
        patience: evaluations without improvement before a member stops.
    """

    score: Callable[[StackedMLP], Tensor]
    every: int
    patience: int


@dataclass
class Pruning:
    """Successive halving inside an ensemble: drop members far behind at a rung.

    At each rung step, a member still training leaves if its best score so far is more
    than ``margin`` below the best any member of the ensemble has reached, and it is not
    among the best ``keep_fraction`` of the members still training.

    Args:
        rungs: steps at which members are compared (evaluation steps).
        margin: how far behind (in the primary metric's units) a member may fall.
        keep_fraction: the share of the training members that always stays.
    """

    rungs: tuple[int, ...]
    margin: float
    keep_fraction: float = 0.5


@dataclass
class MemberRun:
    """One member's run.

    Args:
        weights: its kept kernels and biases (see :meth:`StackedMLP.member_weights`).
        best_step: step of the kept weights (the last step without early stopping).
        best_score: validation score of the kept weights (NaN without early stopping).
        steps: steps it trained.
        pruned: left at a rung (its run is shorter than alone).
        history: ``(step, score)`` of every evaluation.
    """

    weights: list[Tensor]
    best_step: int
    best_score: float
    steps: int
    pruned: bool = False
    history: list[tuple[int, float]] = field(default_factory=list)


def lr_factors(warmup_steps: int, total_steps: int) -> list[float]:
    """LR multiplier of each step, as :class:`~lit_mrl.schedules.WarmupCosineLR` sets it."""
    return [warmup_cosine_factor(step, warmup_steps, total_steps) for step in range(total_steps)]


def batch_stream(num_samples: int, batch_size: int, seed: int) -> Iterator[Tensor]:
    """Endless minibatch indices: :class:`~lit_mrl.probe.data.ShuffledBatches` epoch after epoch."""
    sampler = ShuffledBatches(num_samples, batch_size, seed)
    while True:
        yield from sampler


class _Members:
    """The members still training: their seeds' batch streams, dropout draws and best weights."""

    def __init__(
        self, model: StackedMLP, train: EmbeddingTensors, seeds: list[int], batch_size: int
    ) -> None:
        self.model = model
        self.ids = list(range(len(seeds)))  # original index of each current member
        self.seeds = list(seeds)
        device = model.device
        distinct = sorted(set(seeds))
        self.streams = {s: batch_stream(len(train), batch_size, s) for s in distinct}
        self.draws = {s: torch.Generator(device).manual_seed(s) for s in distinct}
        self.best = model.flat.clone()
        self.best_score = torch.full((len(seeds),), math.nan, dtype=torch.float64)
        self.best_step = torch.zeros(len(seeds), dtype=torch.long)
        self.stale = torch.zeros(len(seeds), dtype=torch.long)
        self.history: list[list[tuple[int, float]]] = [[] for _ in seeds]

    def batch(self, embeddings: Tensor, labels: Tensor) -> tuple[Tensor, Tensor, list[Tensor]]:
        """This step's inputs, labels and dropout draws (shared when all seeds are one)."""
        device = self.model.device
        index = {s: next(stream).to(device) for s, stream in self.streams.items()}
        hidden = self.model.dims[1:-1] if self.model.dropping else []
        if len(index) == 1:
            (only,) = index.values()
            size = len(only)
            (draws,) = self.draws.values()
            masks = [torch.rand((1, size, h), generator=draws, device=device) for h in hidden]
            return embeddings[only], labels[only], masks
        rows = torch.stack([index[s] for s in self.seeds])  # (E, B)
        size = rows.shape[1]
        masks = [
            torch.cat([torch.rand((1, size, h), generator=self.draws[s], device=device)
                       for s in self.seeds])
            for h in hidden
        ]  # fmt: skip
        return embeddings[rows], labels[rows], masks

    def improve(self, score: Tensor, step: int) -> None:
        """Record better scores (a first finite score always is; NaN never is)."""
        for j, value in zip(self.ids, score.tolist(), strict=True):
            self.history[j].append((step, value))
        better = (score > self.best_score) | (self.best_score.isnan() & ~score.isnan())
        self.stale = torch.where(better, 0, self.stale + 1)
        if better.any():
            chosen = better.nonzero()[:, 0].to(self.model.device)
            views = unflatten(self.model.flat, self.model.shapes)
            best = unflatten(self.best, self.model.shapes)
            for current, kept in zip(views[0] + views[1], best[0] + best[1], strict=True):
                kept[chosen] = current[chosen]
            self.best_score = torch.where(better, score, self.best_score)
            self.best_step[better] = step

    def leave(self, leaving: Tensor, step: int, pruned: Tensor, optimizer: StackedAdam,
              runs: list[MemberRun | None], use_best: bool) -> None:  # fmt: skip
        """Record the runs of the ``leaving`` members (bool ``(E,)``) and drop them."""
        shapes = self.model.shapes
        weights = unflatten(self.best if use_best else self.model.flat, shapes)
        for j in leaving.nonzero()[:, 0].tolist():
            runs[self.ids[j]] = MemberRun(
                [t[j].clone() for t in weights[0] + weights[1]],
                int(self.best_step[j]) if use_best else step,
                float(self.best_score[j]),
                step,
                bool(pruned[j]),
                self.history[self.ids[j]],
            )
        staying = (~leaving).nonzero()[:, 0]
        if len(staying) == 0:
            return
        self.model.select(staying)
        optimizer.select(staying, shapes)
        self.best = select_flat(self.best, shapes, staying)
        for name in ("best_score", "best_step", "stale"):
            setattr(self, name, getattr(self, name)[staying])
        keep = staying.tolist()
        self.ids = [self.ids[j] for j in keep]
        self.seeds = [self.seeds[j] for j in keep]
        for seed in set(self.streams) - set(self.seeds):  # a seed nobody trains with any more
            del self.streams[seed], self.draws[seed]


def fit_members(
    model: StackedMLP,
    train: EmbeddingTensors,
    task: str,
    lr: Tensor,
    weight_decay: Tensor,
    seeds: list[int],
    steps: int,
    warmup_steps: int,
    batch_size: int,
    early_stopping: EarlyStopping | None = None,
    pruning: Pruning | None = None,
) -> list[MemberRun]:
    """Train every member for up to ``steps`` steps, each as it would train alone.

    Args:
        model: the members, on the device to train on (changed: members leave it).
        train: training embeddings and labels.
        task: loss of the task (see :func:`~lit_mrl.probe.ensemble.loss_gradient`).
        lr: ``(E,)`` peak learning rates.
        weight_decay: ``(E,)`` L2 factors.
        seeds: ``E`` seeds of each member's data order and dropout draws (its initial
            weights are already in ``model``).
        steps: optimisation steps (warm-up plus cosine decay to 0).
        warmup_steps: steps of linear warm-up.
        batch_size: embeddings per minibatch.
        early_stopping: evaluate every ``every`` steps; a member keeps its best weights
            and stops after ``patience`` evaluations without improving.
        pruning: successive halving (needs ``early_stopping``'s scores).

    Returns:
        One :class:`MemberRun` per member, in ``model``'s original order.
    """
    device = model.device
    embeddings, labels = train.embeddings.to(device), train.labels.to(device)
    members = _Members(model, train, seeds, batch_size)
    optimizer = StackedAdam(model, lr, weight_decay)
    factors = lr_factors(warmup_steps, steps)
    runs: list[MemberRun | None] = [None] * len(seeds)
    rungs = set(pruning.rungs) if pruning is not None and early_stopping is not None else set()
    for step in range(1, steps + 1):
        inputs, targets, masks = members.batch(embeddings, labels)
        outputs = model.forward(inputs, masks)
        model.backward(inputs, outputs, loss_gradient(task, outputs[-1], targets))
        optimizer.step(factors[step - 1])
        last = step == steps
        if early_stopping is None:
            if last:
                members.leave(torch.ones(model.num_members, dtype=torch.bool), step,
                              torch.zeros(model.num_members, dtype=torch.bool), optimizer,
                              runs, use_best=False)  # fmt: skip
            continue
        if step % early_stopping.every and not last:
            continue
        with torch.no_grad():
            members.improve(early_stopping.score(model).double().cpu(), step)
        stopped = members.stale >= early_stopping.patience
        pruned = _pruned(members, runs, pruning) if step in rungs else torch.zeros_like(stopped)
        leaving = stopped | pruned | last
        if leaving.any():
            members.leave(leaving, step, pruned & ~stopped, optimizer, runs, use_best=True)
        if all(run is not None for run in runs):
            break
    return runs  # type: ignore[return-value]


def _pruned(members: _Members, runs: list[MemberRun | None], pruning: Pruning) -> Tensor:
    """Members still training that fall more than the margin behind the ensemble's best."""
    scores = members.best_score
    done = [r.best_score for r in runs if r is not None and not math.isnan(r.best_score)]
    finite = scores[~scores.isnan()].tolist()
    if not finite and not done:
        return torch.zeros(len(scores), dtype=torch.bool)
    leader = max(finite + done)
    behind = scores.nan_to_num(-math.inf) < leader - pruning.margin
    keep = math.ceil(pruning.keep_fraction * len(scores))
    top = torch.zeros(len(scores), dtype=torch.bool)
    top[scores.nan_to_num(-math.inf).argsort(descending=True, stable=True)[:keep]] = True
    return behind & ~top
