"""Probe hyper-parameter search on cached embeddings, one batched ensemble per shape.

The paper picks each (task, embedding model) probe on validation data. Here every config
of a grid is trained at once: configs that share a hidden-layer shape form one
:class:`~lit_mrl.probe.ensemble.StackedMLP` (split into chunks that fit in memory), and
each member trains as it would alone (:mod:`lit_mrl.probe.training`): it keeps its
weights at its best validation score and stops on its own (early stopping on the task's
primary metric). The best config's first-seed run is the search's; it is trained with
the other ``K - 1`` seeds as one more ensemble, and its test metrics are reported as the
mean over seeds with a 95 % bootstrap interval over test items and seeds
(:mod:`lit_mrl.probe.intervals`).
"""

from __future__ import annotations

import itertools
import math
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import torch
from torch import Tensor

from lit_mrl.metrics import MetricName, key_class_map, primary_scores, score_predictions
from lit_mrl.models.heads import seeded_mlp_head
from lit_mrl.probe.budget import Budget, PruneRule
from lit_mrl.probe.data import ProbeData
from lit_mrl.probe.ensemble import StackedMLP
from lit_mrl.probe.grid import Grid, ProbeConfig
from lit_mrl.probe.intervals import bootstrap
from lit_mrl.probe.training import EarlyStopping, MemberRun, Pruning, fit_members
from lit_mrl.tasks import ranking_metrics

Precision = Literal["32", "bf16-mixed"]
COMPUTE_DTYPES: dict[str, torch.dtype] = {"32": torch.float32, "bf16-mixed": torch.bfloat16}


def select_best(val: list[dict[str, float]], keys: tuple[str, ...]) -> int:
    """Index of the best config by ``keys`` (NaN ranks last; ties go to the earliest)."""

    def rank(i: int) -> tuple[float, ...]:
        return tuple(-math.inf if math.isnan(val[i][k]) else val[i][k] for k in keys)

    return max(range(len(val)), key=rank)


def members_per_ensemble(config: ProbeConfig, in_dim: int, out_dim: int, max_params: int) -> int:
    """How many members of this shape fit in ``max_params`` stacked parameters."""
    dims = [in_dim, *config.hidden_dims, out_dim]
    params = sum((a + 1) * b for a, b in itertools.pairwise(dims))
    return max(1, max_params // params)


def ensembles(
    configs: list[ProbeConfig], in_dim: int, out_dim: int, max_params: int
) -> Iterator[list[int]]:
    """Config indices of each ensemble: one shape per ensemble, at most ``max_params``."""
    by_shape: dict[tuple[int, ...], list[int]] = {}
    for i, config in enumerate(configs):
        by_shape.setdefault(config.hidden_dims, []).append(i)
    for members in by_shape.values():
        size = members_per_ensemble(configs[members[0]], in_dim, out_dim, max_params)
        for start in range(0, len(members), size):
            yield members[start : start + size]


class Scorer:
    """Scores stacked members on one split, in the data's own units.

    Args:
        data: the embeddings.
        stage: ``val`` or ``test``.
        metric: ``"mirex_key"`` for the key task.
    """

    def __init__(self, data: ProbeData, stage: str, metric: MetricName) -> None:
        self.data, self.metric = data, metric
        self.embeddings = data.split(stage).embeddings
        self.labels = data.original_labels(stage)
        self._labels_on: dict[torch.device, Tensor] = {}

    def predict(self, model: StackedMLP) -> Tensor:
        """``(E, N, K)`` predictions in the data's units, on the model's device."""
        return self.data.to_original_units(model.predict(self.embeddings))

    def score(self, preds: Tensor) -> tuple[dict[str, float], dict[str, list[float]]]:
        """Summary and per-class metrics of one member's ``(N, K)`` predictions."""
        return score_predictions(
            self.data.task, preds, self.labels, self.metric, self.data.vocabulary
        )

    def primary_scores(self, model: StackedMLP) -> Tensor:
        """``(E,)`` primary metric of every member, computed together (early stopping)."""
        preds = self.predict(model)
        if preds.device not in self._labels_on:
            self._labels_on[preds.device] = self.labels.to(preds.device)
        labels = self._labels_on[preds.device]
        return primary_scores(self.data.task, preds, labels, self.metric, self.data.vocabulary)


@dataclass(frozen=True)
class Trained:
    """Runs of configs (see :class:`~lit_mrl.probe.training.MemberRun`), one per config."""

    configs: list[ProbeConfig]
    runs: list[MemberRun]

    def model(self) -> StackedMLP:
        """The runs' kept weights as one stacked model (evaluation only)."""
        return StackedMLP.from_weights([run.weights for run in self.runs])


def train_configs(
    data: ProbeData,
    configs: list[ProbeConfig],
    seeds: list[int],
    budget: Budget,
    valid: Scorer,
    device: str,
    pruning: Pruning | None = None,
    precision: Precision = "32",
) -> Trained:
    """Train configs of one shape together, each with its seed, each as if alone."""
    dims = list(configs[0].hidden_dims)
    heads = {
        s: seeded_mlp_head(data.embed_dim, len(data.vocabulary), dims, 0.0, s) for s in set(seeds)
    }
    dropout = torch.tensor([c.dropout for c in configs])
    model = StackedMLP([heads[s] for s in seeds], dropout, device, COMPUTE_DTYPES[precision])
    early = (
        EarlyStopping(valid.primary_scores, budget.eval_every, budget.patience)
        if budget.patience > 0
        else None
    )
    runs = fit_members(
        model, data.split("train"), data.task,
        lr=torch.tensor([c.lr for c in configs], dtype=torch.float64),
        weight_decay=torch.tensor([c.weight_decay for c in configs]),
        seeds=seeds, steps=budget.steps, warmup_steps=budget.warmup_steps,
        batch_size=budget.batch_size, early_stopping=early, pruning=pruning,
    )  # fmt: skip
    return Trained(configs, runs)


def run_search(
    data: ProbeData,
    grid: Grid,
    budget: Budget,
    seeds: list[int],
    metric: MetricName = "default",
    device: str = "cpu",
    max_params: int = 2**27,
    replicates: int = 1000,
    progress: Callable[[str], None] = print,
    pruning: PruneRule | None = None,
    precision: Precision = "32",
) -> dict[str, Any]:
    """Search ``grid`` (first seed), select on validation, test the best with every seed.

    Args:
        data: the embeddings (standardised as :class:`~lit_mrl.probe.data.ProbeData` says).
        grid: the search space.
        budget: steps, warm-up, batch size and early stopping.
        seeds: the first seeds the search; the selected config is trained with each
            (its first-seed run is the search's own).
        metric: ``"mirex_key"`` selects 24-class key probes by the MIREX score.
        device: where the ensembles train.
        max_params: largest number of stacked parameters in one ensemble (memory bound).
        replicates: bootstrap replicates of the test interval.
        progress: receives one line per trained ensemble.
        pruning: successive halving inside each ensemble (none by default).
        precision: ``"bf16-mixed"`` runs the training passes' matrix products in bfloat16
            (weights, optimizer and every score stay float32; see
            :mod:`~lit_mrl.probe.ensemble`).

    Returns:
        ``configs`` (every config with its validation metrics, best step, steps trained
        and whether it was pruned), ``selected`` (index), ``val`` (selected, first seed),
        ``test`` (mean over seeds), ``test_low``/``test_high`` (95 % interval),
        ``test_per_seed``, ``per_class`` (``{metric: {"mean", "low", "high"}}`` lists per
        class), ``weights`` (the selected config's kept weights per seed, for its head).
    """
    configs = grid.configs()
    valid, test = Scorer(data, "val", metric), Scorer(data, "test", metric)
    in_dim, out_dim = data.embed_dim, len(data.vocabulary)
    rows: list[dict[str, Any]] = [{} for _ in configs]
    runs: dict[int, MemberRun] = {}
    rule = pruning.for_budget(budget) if pruning is not None else None
    for members in ensembles(configs, in_dim, out_dim, max_params):
        start = time.perf_counter()
        chosen = [configs[i] for i in members]
        trained = train_configs(
            data, chosen, [seeds[0]] * len(chosen), budget, valid, device, rule, precision
        )
        for i, run, preds in zip(
            members, trained.runs, valid.predict(trained.model()), strict=True
        ):
            runs[i] = run
            rows[i] = {"val": valid.score(preds)[0], "best_step": run.best_step,
                       "steps": run.steps, "pruned": run.pruned, "history": run.history}  # fmt: skip
        steps = max(run.steps for run in trained.runs)
        progress(
            f"hidden {list(chosen[0].hidden_dims)}: {len(members)} configs, {steps} steps "
            f"in {time.perf_counter() - start:.1f} s"
        )
    best = select_best([row["val"] for row in rows], ranking_metrics(data.task, metric))
    start = time.perf_counter()
    seed_runs = {seeds[0]: runs[best]} if not runs[best].pruned else {}
    retrain = [s for s in seeds if s not in seed_runs]
    if retrain:
        trained = train_configs(
            data,
            [configs[best]] * len(retrain),
            retrain,
            budget,
            valid,
            device,
            precision=precision,
        )
        seed_runs.update(zip(retrain, trained.runs, strict=True))
    model = StackedMLP.from_weights([seed_runs[s].weights for s in seeds])
    test_preds = list(test.predict(model).cpu())
    per_seed = [test.score(preds)[0] for preds in test_preds]
    progress(
        f"selected config {best}: seeds {seeds} ({len(retrain)} trained again) "
        f"in {time.perf_counter() - start:.1f} s"
    )
    summary = summarise(data, metric, test, [p.numpy() for p in test_preds], per_seed, replicates)
    configs_out = [{"id": i, **c.as_dict(), **rows[i]} for i, c in enumerate(configs)]
    weights = [seed_runs[s].weights for s in seeds]
    return {"configs": configs_out, "selected": best, "val": rows[best]["val"], **summary,
            "weights": weights}  # fmt: skip


def summarise(
    data: ProbeData,
    metric: MetricName,
    test: Scorer,
    test_preds: list[np.ndarray],
    per_seed: list[dict[str, float]],
    replicates: int,
) -> dict[str, Any]:
    """Test mean over seeds, bootstrap interval and per-class values of the selected config."""
    key_map = (
        key_class_map(data.vocabulary).numpy()
        if metric == "mirex_key" and data.vocabulary
        else None
    )
    labels = test.labels.numpy()
    interval = bootstrap(data.task, test_preds, labels, metric, key_map, replicates)
    names = list(per_seed[0])
    mean = {name: float(np.mean([run[name] for run in per_seed])) for name in names}
    low, high = {}, {}
    for name in names:
        key = name if name in interval["low"] else None
        if key is None and name.startswith("r2_"):  # per-output R² comes per class
            index = data.vocabulary.index(name[3:])
            low[name] = float(interval["low"]["per_class/r2"][index])
            high[name] = float(interval["high"]["per_class/r2"][index])
        elif key is not None:
            low[name], high[name] = float(interval["low"][key]), float(interval["high"][key])
    per_class = {
        name.split("/", 1)[1]: {
            "mean": interval["mean"][name].tolist(),
            "low": interval["low"][name].tolist(),
            "high": interval["high"][name].tolist(),
        }
        for name in interval["mean"]
        if name.startswith("per_class/")
    }
    return {
        "test": mean,
        "test_low": low,
        "test_high": high,
        "test_per_seed": per_seed,
        "per_class": per_class,
        "bootstrap_replicates": replicates,
    }
