"""Probe searches at real scale: lit_mrl vs scikit-learn, one config at a time, Lightning.

One process, one run, on synthetic tasks made at run time (:mod:`bench.probe_tasks`):
``pitch`` (616 notes, 192-d log-mel stats, 36 pitches) and ``tagging`` (MTT-sized: 19k
training clips, 1728-d, 50 tags). For each task and grid it prints the wall time, the
selected config and its validation and test metric of:

* ``lit_mrl``: :func:`lit_mrl.probe.search.run_search` as ``python -m lit_mrl probe``
  runs it (the budget of ``Budget.for_data``, early stopping, 3 seeds, 1000 bootstrap
  replicates); ``grid`` is its search phase, ``total`` includes the seeds and intervals.
  ``lit_mrl+prune`` adds successive halving (``--prune``); ``+bf16`` (``lit_mrl+bf16``,
  ``lit_mrl+prune+bf16``) trains with bfloat16 matrix products (``--precision bf16-mixed``).
* ``sklearn``: what a user would reach for: ``LogisticRegression`` at 4 L2 strengths (C
  0.01-10; one-vs-rest for tags) and ``MLPClassifier`` with the grid's hidden shapes, L2
  (``alpha = 2 * weight_decay * N``, Keras' L2 in scikit-learn's units) and learning rates
  (no dropout: scikit-learn has none, so dropout values collapse), defaults otherwise
  (200 epochs, batch 200, stop when the training loss stalls), standardised inputs,
  selected on validation, one thread (``threadpoolctl``).
* ``one-at-a-time``: each config alone in plain PyTorch (``MLPHead``, ``torch.optim.Adam``,
  the warm-up/cosine schedule, the same early stopping on validation): the search
  without batching.
* ``lightning``: each config as a ``ProbeModule`` + ``Trainer.fit`` with Lightning's
  ``EarlyStopping`` on the validation metric (what MARBLE does per config).

Baselines that would take too long run on the first ``--baseline-configs`` configs of
each hidden shape, and their time is extrapolated to the grid (per-shape mean x configs
of the shape; marked ``~``); their selection is then not comparable and not printed.
The paper grid at full budget is beyond a 2-core CPU (see bench/README.md): with
``--paper-steps N`` each shape's ensemble trains N steps and the search time is
extrapolated from the measured step times (an upper bound without early stopping).

Example::

    python -m bench.probe_scale --task pitch --grids demo small --threads 1
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from bench.probe_tasks import SyntheticTask, pitch_task, tagging_task
from lit_mrl.metrics import score_predictions
from lit_mrl.models.heads import seeded_mlp_head
from lit_mrl.probe.data import EmbeddingTensors, ProbeData, ShuffledBatches
from lit_mrl.probe.ensemble import ADAM_EPS, StackedMLP
from lit_mrl.probe.grid import GRIDS, Grid, ProbeConfig
from lit_mrl.probe.search import (
    COMPUTE_DTYPES,
    Budget,
    PruneRule,
    members_per_ensemble,
    run_search,
    select_best,
)
from lit_mrl.probe.training import batch_stream, lr_factors
from lit_mrl.tasks import primary_metric, ranking_metrics


@dataclass
class Row:
    """One method's result on one (task, grid)."""

    method: str
    seconds: float
    selected: str = "-"
    val: float = math.nan
    test: float = math.nan
    total: float | None = None
    extrapolated: bool = False


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--task", nargs="+", default=["pitch"], choices=["pitch", "tagging"])
    parser.add_argument("--grids", nargs="+", default=["demo", "small"], choices=sorted(GRIDS))
    parser.add_argument(
        "--methods", nargs="+", default=["lit_mrl", "lit_mrl+prune", "sklearn", "one-at-a-time", "lightning"],
        choices=["lit_mrl", "lit_mrl+prune", "lit_mrl+bf16", "lit_mrl+prune+bf16", "sklearn",
                 "one-at-a-time", "lightning"],
    )  # fmt: skip
    parser.add_argument(
        "--paper-precision", nargs="+", default=["32"], choices=["32", "bf16-mixed"],
        help="precisions of the --paper-steps extrapolation (each one measured)",
    )  # fmt: skip
    parser.add_argument("--threads", type=int, default=1, help="torch and BLAS threads")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument(
        "--baseline-configs", type=int, default=0,
        help="run baselines on this many configs per shape and extrapolate (0: all)",
    )  # fmt: skip
    parser.add_argument("--paper-steps", type=int, default=0, help="see the module docstring")
    parser.add_argument("--min-steps", type=int, default=1000, help="the budget's floor")
    parser.add_argument(
        "--batch-size", type=int, default=None,
        help="probe minibatch (default: lit_mrl's, 256 halved for small data; "
             "--batch-size 256 --min-steps 2000 is the budget before 2026-12-04)",
    )  # fmt: skip
    parser.add_argument(
        "--steps", type=int, default=0,
        help="a fixed step budget for every method (a measured subset of the full budget)",
    )  # fmt: skip
    parser.add_argument("--history", help="write lit_mrl's validation curves to this JSON file")
    parser.add_argument(
        "--device", default="cpu",
        help="where lit_mrl's searches and the paper-grid steps run (e.g. cuda); scikit-learn, "
             "one-at-a-time and Lightning stay on the CPU",
    )  # fmt: skip
    return parser.parse_args(argv)


def probe_data(task: SyntheticTask) -> ProbeData:
    stages = dict(zip(("train", "val", "test"), task.splits.values(), strict=True))
    splits = {
        stage: EmbeddingTensors(torch.from_numpy(emb), torch.from_numpy(labels))
        for stage, (emb, labels) in stages.items()
    }
    return ProbeData(splits, task.task, task.vocabulary)


def describe(config: ProbeConfig) -> str:
    dims = list(config.hidden_dims)
    return f"{dims} p={config.dropout} L2={config.weight_decay:g} lr={config.lr:g}"


HISTORIES: dict[str, list] = {}


def run_lit_mrl(
    data: ProbeData,
    grid: Grid,
    budget: Budget,
    seeds: int,
    prune: bool,
    bf16: bool = False,
    device: str = "cpu",
) -> Row:
    marks: list[float] = []
    start = time.perf_counter()
    found = run_search(
        data, grid, budget, list(range(seeds)), progress=lambda _: marks.append(time.perf_counter()),
        pruning=PruneRule() if prune else None, precision="bf16-mixed" if bf16 else "32",
        device=device,
    )  # fmt: skip
    total = time.perf_counter() - start
    primary = primary_metric(data.task)
    config = grid.configs()[found["selected"]]
    pruned = sum(c["pruned"] for c in found["configs"])
    name = "lit_mrl" + ("+prune" if prune else "") + ("+bf16" if bf16 else "")
    HISTORIES[grid.name + name[len("lit_mrl") :]] = found["configs"]
    row = Row(
        name,
        marks[-2] - start,
        describe(config),
        found["val"][primary],
        found["test"][primary],
        total,
    )
    if prune:
        row.method += f" ({pruned} pruned)"
    return row


def _scores(data: ProbeData, stage: str, preds: np.ndarray) -> dict[str, float]:
    labels = data.original_labels(stage)
    return score_predictions(
        data.task, torch.from_numpy(np.asarray(preds, dtype=np.float32)), labels
    )[0]


def run_sklearn(data: ProbeData, grid: Grid, threads: int, limit: int) -> Row:
    """Logistic regression at 4 strengths + the grid's MLPs in scikit-learn (module docstring)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.multiclass import OneVsRestClassifier
    from sklearn.neural_network import MLPClassifier
    from threadpoolctl import threadpool_limits

    x_train, y_train = (
        t.numpy() for t in (data.split("train").embeddings, data.split("train").labels)
    )
    y_train = y_train.astype(np.int64)  # class indices, or 0/1 tags
    models: list[tuple[str, tuple[int, ...], Callable[[], object]]] = []
    for c in (0.01, 0.1, 1.0, 10.0):
        linear = LogisticRegression(C=c, max_iter=1000)
        models.append(
            (
                f"logistic C={c:g}",
                (),
                lambda m=linear: m if data.task == "multiclass" else OneVsRestClassifier(m),
            )
        )
    shapes = sorted(
        {(c.hidden_dims, c.weight_decay, c.lr) for c in grid.configs() if c.hidden_dims}
    )
    for dims, wd, lr in shapes:
        alpha = 2 * wd * len(x_train)
        models.append((f"MLP {list(dims)} alpha={alpha:g} lr={lr:g}", dims,
                       lambda d=dims, a=alpha, r=lr: MLPClassifier(d, alpha=a, learning_rate_init=r, random_state=0)))  # fmt: skip
    models = _limited(models, limit)
    primary = ranking_metrics(data.task, "default")
    results, times = [], {}
    with threadpool_limits(threads), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # ConvergenceWarning at max_iter
        for name, dims, make in models:
            start = time.perf_counter()
            model = make().fit(x_train, y_train)
            times.setdefault(dims, []).append(time.perf_counter() - start)
            outputs = [_outputs(model, data.split(s).embeddings.numpy()) for s in ("val", "test")]
            results.append(
                (name, _scores(data, "val", outputs[0]), _scores(data, "test", outputs[1]))
            )
    return _baseline_row(
        "sklearn", results, times, primary, limit, _shape_counts(grid, sklearn=True)
    )


def _outputs(model: object, emb: np.ndarray) -> np.ndarray:
    probs = model.predict_proba(emb)
    return probs if not isinstance(probs, list) else np.stack([p[:, 1] for p in probs], 1)


def _limited(items: list, limit: int) -> list:
    """The first ``limit`` items of each shape (``item[1]``); all with limit 0."""
    if not limit:
        return items
    counts: dict = {}
    kept = []
    for item in items:
        counts[item[1]] = counts.get(item[1], 0) + 1
        if counts[item[1]] <= limit:
            kept.append(item)
    return kept


def _shape_counts(grid: Grid, sklearn: bool = False) -> dict[tuple[int, ...], int]:
    if sklearn:
        mlps = {(c.hidden_dims, c.weight_decay, c.lr) for c in grid.configs() if c.hidden_dims}
        counts = {(): 4}
        for dims, _, _ in mlps:
            counts[dims] = counts.get(dims, 0) + 1
        return counts
    counts: dict[tuple[int, ...], int] = {}
    for c in grid.configs():
        counts[c.hidden_dims] = counts.get(c.hidden_dims, 0) + 1
    return counts


def _baseline_row(method, results, times, primary, limit, counts) -> Row:
    if limit and any(len(times[d]) < counts[d] for d in counts):
        seconds = sum(np.mean(times[d]) * counts[d] for d in counts)
        return Row(method, seconds, extrapolated=True)
    best = select_best([r[1] for r in results], primary)
    name, val, test = results[best]
    return Row(method, sum(sum(t) for t in times.values()), name, val[primary[0]], test[primary[0]])


def train_alone(
    data: ProbeData, config: ProbeConfig, budget: Budget, seed: int
) -> dict[str, float]:
    """One config in plain PyTorch with the search's protocol; its best validation scores."""
    from lit_mrl.losses import l2_penalty, probe_loss

    train = data.split("train")
    head = seeded_mlp_head(
        data.embed_dim, len(data.vocabulary), list(config.hidden_dims), 0.0, seed
    )
    linears, keep = head.linears(), 1.0 - config.dropout
    draws = torch.Generator().manual_seed(
        seed
    )  # the search's dropout draws (lit_mrl.probe.training)

    def forward(emb: torch.Tensor, training: bool) -> torch.Tensor:
        for linear in linears[:-1]:
            emb = linear(emb).relu()
            if training and keep < 1:
                emb = emb * (torch.rand((1, *emb.shape), generator=draws)[0] < keep) * (1.0 / keep)
        return linears[-1](emb)

    optimizer = torch.optim.Adam(head.parameters(), lr=config.lr, eps=ADAM_EPS)
    factors = lr_factors(budget.warmup_steps, budget.steps)
    batches, step, stale, best = ShuffledBatches(len(train), budget.batch_size, seed), 0, 0, None
    primary = primary_metric(data.task)
    while step < budget.steps and stale < budget.patience:
        for index in batches:
            for group in optimizer.param_groups:
                group["lr"] = config.lr * factors[step]
            loss = probe_loss(
                forward(train.embeddings[index], True), train.labels[index], data.task
            )
            loss = loss + l2_penalty([lin.weight for lin in head.linears()], config.weight_decay)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            step += 1
            if step % budget.eval_every == 0 or step == budget.steps:
                with torch.no_grad():
                    preds = data.to_original_units(forward(data.split("val").embeddings, False))
                scores = score_predictions(data.task, preds, data.original_labels("val"))[0]
                if best is None or scores[primary] > best[primary]:
                    best, stale = scores, 0
                else:
                    stale += 1
            if step == budget.steps or stale >= budget.patience:
                break
    return best


def train_lightning(
    data: ProbeData, config: ProbeConfig, budget: Budget, seed: int
) -> dict[str, float]:
    """One config as ProbeModule + Trainer.fit with Lightning's EarlyStopping."""
    import lightning as L
    from lightning.pytorch.callbacks import EarlyStopping as LightningEarlyStopping
    from torch.utils.data import DataLoader

    from lit_mrl.probe.module import ProbeModule

    primary = primary_metric(data.task)
    probe = ProbeModule(
        data.task, len(data.vocabulary), in_dim=data.embed_dim, hidden_dims=list(config.hidden_dims),
        dropout=config.dropout, weight_decay=config.weight_decay, lr=config.lr,
        warmup_steps=budget.warmup_steps, max_steps=budget.steps, init_seed=seed,
        class_names=data.vocabulary,
    )  # fmt: skip
    train, val = data.split("train"), data.split("val")
    stopper = LightningEarlyStopping(f"val/{primary}", mode="max", patience=budget.patience)
    L.Trainer(
        accelerator="cpu", max_steps=budget.steps, logger=False, enable_checkpointing=False,
        enable_progress_bar=False, enable_model_summary=False, callbacks=[stopper],
        val_check_interval=budget.eval_every, check_val_every_n_epoch=None, num_sanity_val_steps=0,
    ).fit(
        probe,
        DataLoader(train, batch_size=None, sampler=ShuffledBatches(len(train), budget.batch_size, seed)),
        DataLoader(val, batch_size=None, sampler=torch.arange(len(val)).split(4096)),
    )  # fmt: skip
    return {primary: float(stopper.best_score)}


def run_alone(name: str, data: ProbeData, grid: Grid, budget: Budget, limit: int) -> Row:
    train = train_alone if name == "one-at-a-time" else train_lightning
    configs = _limited([(c, c.hidden_dims) for c in grid.configs()], limit)
    results, times = [], {}
    for config, dims in configs:
        start = time.perf_counter()
        scores = train(data, config, budget, seed=0)
        times.setdefault(dims, []).append(time.perf_counter() - start)
        results.append((describe(config), scores, {k: math.nan for k in scores}))
    return _baseline_row(
        name, results, times, ranking_metrics(data.task, "default")[:1], limit, _shape_counts(grid)
    )


def paper_extrapolation(
    data: ProbeData,
    grid: Grid,
    budget: Budget,
    steps: int,
    precision: str = "32",
    device: str = "cpu",
) -> Row:
    """Each shape's first ensemble for ``steps`` steps; the search time at the full budget.

    Ensembles are split as the search splits them (``max_params`` stacked parameters);
    every ensemble of a shape is taken to cost what its first one does per step.
    """
    from lit_mrl.probe.ensemble import StackedAdam, loss_gradient

    train, seconds = data.split("train"), 0.0
    for dims, count in _shape_counts(grid).items():
        config = ProbeConfig(dims, 0.5 if dims else 0.0, 0.0, 1e-3)
        size = min(count, members_per_ensemble(config, data.embed_dim, len(data.vocabulary), 2**27))
        head = seeded_mlp_head(data.embed_dim, len(data.vocabulary), list(dims), 0.0, 0)
        dtype = COMPUTE_DTYPES[precision]
        model = StackedMLP([head] * size, torch.full((size,), config.dropout), device, dtype)
        optimizer = StackedAdam(model, torch.full((size,), 1e-3), torch.zeros(size))
        batches = batch_stream(len(train), budget.batch_size, 0)
        embeddings, labels = train.embeddings.to(device), train.labels.to(device)
        for step in range(steps + 1):  # the first step (allocation, kernels) is not timed
            if step == 1:
                _synchronize(device)
                start = time.perf_counter()
            index = next(batches).to(device)
            emb = embeddings[index]
            masks = [torch.rand(1, len(index), h, device=device) for h in dims]
            outputs = model.forward(emb, masks)
            model.backward(emb, outputs, loss_gradient(data.task, outputs[-1], labels[index]))
            optimizer.step(1.0)
        _synchronize(device)
        per_step = (time.perf_counter() - start) / max(steps, 1)
        chunks = math.ceil(count / size)
        print(f"  paper grid {list(dims)} x {count} ({chunks} ensembles of <= {size}): "
              f"{per_step:.3f} s per step per ensemble  (load {os.getloadavg()[0]:.1f})", flush=True)  # fmt: skip
        seconds += per_step * chunks * budget.steps
    return Row(
        f"lit_mrl (paper grid, {steps} steps a shape, x {budget.steps}, precision {precision})",
        seconds,
        extrapolated=True,
    )


def main(argv: list[str] | None = None) -> None:
    opts = parse_args(argv)
    torch.set_num_threads(opts.threads)
    warnings.filterwarnings("ignore")
    for name in ("lightning.pytorch", "lightning.fabric"):
        logging.getLogger(name).setLevel(logging.ERROR)  # one Trainer per config
    for task_name in opts.task:
        task = pitch_task() if task_name == "pitch" else tagging_task()
        data = probe_data(task)
        budget = Budget.for_data(
            len(data.split("train")),
            opts.batch_size,
            min_steps=opts.min_steps,
            steps=opts.steps or None,
        )
        print(f"\n{task_name}: {data.task}, {len(data.split('train'))}/{len(data.split('val'))}/"
              f"{len(data.split('test'))} x {data.embed_dim}-d, {len(data.vocabulary)} outputs; "
              f"{budget}; {opts.threads} threads; lit_mrl on {opts.device}")  # fmt: skip
        for grid_name in opts.grids:
            grid = GRIDS[grid_name]
            print(f"{grid_name} grid ({len(grid.configs())} configs):", flush=True)
            if grid_name == "paper" and opts.paper_steps:
                for precision in opts.paper_precision:
                    _print(paper_extrapolation(
                        data, grid, budget, opts.paper_steps, precision, opts.device
                    ))  # fmt: skip
                continue
            for method in opts.methods:
                if method.startswith("lit_mrl"):
                    row = run_lit_mrl(
                        data, grid, budget, opts.seeds, prune="+prune" in method,
                        bf16=method.endswith("+bf16"), device=opts.device,
                    )  # fmt: skip
                elif method == "sklearn":
                    row = run_sklearn(data, grid, opts.threads, opts.baseline_configs)
                else:
                    row = run_alone(method, data, grid, budget, opts.baseline_configs)
                _print(row)
        if opts.history:
            with open(opts.history, "w") as file:
                json.dump(HISTORIES, file)


def _synchronize(device: str) -> None:
    """Wait for the device's queued work (a GPU runs asynchronously; a CPU does not)."""
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize()


def _print(row: Row) -> None:
    seconds = f"{'~' if row.extrapolated else ''}{row.seconds:8.1f} s"
    total = f" (total {row.total:.1f} s)" if row.total is not None else ""
    print(f"  {row.method:<24} {seconds}{total}  selected {row.selected}  "
          f"val {row.val:.4f}  test {row.test:.4f}  (load {os.getloadavg()[0]:.1f})", flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
