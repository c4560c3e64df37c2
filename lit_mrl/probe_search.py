"""Probe hyper-parameter search on cached embeddings, one batched ensemble per shape.

The paper picks each (task, embedding model) probe on validation data; here every
config of a grid is trained at once: configs that share a hidden-layer shape form one
:class:`~lit_mrl.ensemble.EnsembleMLP` (split into chunks that fit in memory) per seed.
The best config by the task's primary validation metric (mean over seeds) is then
reported on the test split; :func:`main` is ``python -m lit_mrl probe``.
"""

import argparse
import itertools
import math
import time
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
import yaml
from torch import Tensor

from lit_mrl.data.embeddings import EmbeddingDataModule
from lit_mrl.ensemble import EnsembleMLP, fit_ensemble, predict_ensemble
from lit_mrl.metrics import score_predictions
from lit_mrl.models.heads import seeded_mlp_head
from lit_mrl.probe_grid import Grid, ProbeConfig, load_grid
from lit_mrl.probe_results import log_to_wandb, write_results

Metric = Literal["default", "mirex_key"]


def primary_metrics(task: str, metric: Metric) -> tuple[str, ...]:
    """Validation metrics that rank configs, most important first (later ones break ties)."""
    if metric == "mirex_key":
        return ("mirex_key", "accuracy")
    return {
        "multilabel": ("roc_auc", "pr_auc"),
        "multiclass": ("accuracy", "macro_accuracy"),
        "regression": ("r2",),
    }[task]


def mean_over_seeds(runs: list[dict[str, float]]) -> dict[str, float]:
    """Per-metric mean of one config's per-seed results."""
    return {name: float(np.mean([run[name] for run in runs])) for name in runs[0]}


def select_best(val_means: list[dict[str, float]], keys: tuple[str, ...]) -> int:
    """Index of the best config by ``keys`` (NaN ranks last; ties go to the earliest)."""

    def rank(i: int) -> tuple[float, ...]:
        return tuple(-math.inf if math.isnan(val_means[i][k]) else val_means[i][k] for k in keys)

    return max(range(len(val_means)), key=rank)


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


def run_search(
    data: EmbeddingDataModule,
    grid: Grid,
    steps: int,
    warmup_steps: int,
    seeds: list[int],
    metric: Metric = "default",
    device: str = "cpu",
    max_params: int = 2**27,
    progress: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Train every config of ``grid`` for every seed, select on validation, test the best.

    Args:
        data: the embeddings (its ``batch_size`` is the minibatch size).
        grid: the search space.
        steps: optimisation steps per probe (warm-up plus cosine decay to 0).
        warmup_steps: steps of linear warm-up.
        seeds: seeds of the initial weights, data order and dropout masks; metrics are
            averaged over seeds.
        metric: ``"mirex_key"`` selects 24-class key probes by the MIREX score.
        device: where the ensembles train.
        max_params: largest number of stacked parameters in one ensemble (memory bound).
        progress: receives one line per trained ensemble.

    Returns:
        ``configs`` (every config with its mean and per-seed validation metrics),
        ``selected`` (index), ``val``/``test``/``test_std``/``test_per_seed`` of the selected
        config and ``per_class`` (its test metrics per class, mean over seeds).
    """
    task, names = data.task, data.vocabulary
    configs = grid.configs()
    in_dim, out_dim = data.embed_dim, len(names)
    val_runs: list[list[dict[str, float]]] = [[] for _ in configs]
    test_runs: list[list[tuple[dict[str, float], dict[str, list[float]]]]] = [[] for _ in configs]
    for members in ensembles(configs, in_dim, out_dim, max_params):
        for seed in seeds:
            start = time.perf_counter()
            chosen = [configs[i] for i in members]
            val_preds, test_preds = train_ensemble(data, chosen, seed, steps, warmup_steps, device)
            for e, i in enumerate(members):
                valid, test = data.load("val"), data.load("test")
                val_runs[i].append(
                    score_predictions(task, val_preds[e], valid.labels, metric, names)[0]
                )
                test_runs[i].append(
                    score_predictions(task, test_preds[e], test.labels, metric, names)
                )
            progress(
                f"hidden {list(chosen[0].hidden_dims)}: {len(members)} configs, seed {seed}, "
                f"{steps} steps in {time.perf_counter() - start:.1f} s"
            )
    val_means = [mean_over_seeds(runs) for runs in val_runs]
    best = select_best(val_means, primary_metrics(task, metric))
    configs_out = [
        {"id": i, **c.as_dict(), "val": val_means[i], "val_per_seed": val_runs[i]}
        for i, c in enumerate(configs)
    ]
    return {"configs": configs_out, "selected": best, **summarise(val_means[best], test_runs[best])}


def train_ensemble(
    data: EmbeddingDataModule,
    configs: list[ProbeConfig],
    seed: int,
    steps: int,
    warmup_steps: int,
    device: str,
) -> tuple[Tensor, Tensor]:
    """Train configs of one shape as one ensemble; its ``(E, N, K)`` val and test outputs."""
    head = seeded_mlp_head(
        data.embed_dim, len(data.vocabulary), list(configs[0].hidden_dims), 0.0, seed
    )
    ensemble = EnsembleMLP([head] * len(configs), torch.tensor([c.dropout for c in configs]))
    fit_ensemble(
        ensemble.to(device),
        data.load("train"),
        data.task,
        lr=torch.tensor([c.lr for c in configs], dtype=torch.float64),
        weight_decay=torch.tensor([c.weight_decay for c in configs]),
        steps=steps,
        warmup_steps=warmup_steps,
        batch_size=data.batch_size,
        seed=seed,
    )
    val = predict_ensemble(ensemble, data.load("val").embeddings)
    return val, predict_ensemble(ensemble, data.load("test").embeddings)


def summarise(
    val: dict[str, float], test_runs: list[tuple[dict[str, float], dict[str, list[float]]]]
) -> dict[str, Any]:
    """Results of the selected config from its per-seed test runs.

    Returns:
        ``val``, ``test`` (mean over seeds), ``test_std``, ``test_per_seed`` and
        ``per_class`` (test metrics per class, mean over seeds).
    """
    summaries = [summary for summary, _ in test_runs]
    with warnings.catch_warnings():  # a class undefined in every seed stays NaN
        warnings.simplefilter("ignore", RuntimeWarning)
        per_class = {
            name: np.nanmean([classes[name] for _, classes in test_runs], axis=0).tolist()
            for name in test_runs[0][1]
        }
    return {
        "val": val,
        "test": mean_over_seeds(summaries),
        "test_std": {k: float(np.std([s[k] for s in summaries])) for k in summaries[0]},
        "test_per_seed": summaries,
        "per_class": per_class,
    }


def config_settings(path: str | Path) -> dict[str, Any]:
    """Search settings from a probe config (the YAML that ``lit_mrl fit`` also takes).

    Read: ``data.init_args.root`` (embeddings) and ``batch_size``;
    ``model.init_args.task``, ``metric``, ``warmup_steps`` and ``max_steps`` (steps).
    The config's own probe shape and optimiser values are what the grid replaces.
    """
    config = yaml.safe_load(Path(path).read_text()) or {}
    model = (config.get("model") or {}).get("init_args") or {}
    data = config.get("data") or {}
    data = data.get("init_args", data) or {}
    settings = {
        "embeddings": data.get("root"),
        "batch_size": data.get("batch_size"),
        "task": model.get("task"),
        "metric": model.get("metric"),
        "warmup_steps": model.get("warmup_steps"),
        "steps": model.get("max_steps") if (model.get("max_steps") or -1) > 0 else None,
    }
    return {k: v for k, v in settings.items() if v is not None}


def default_names(root: Path, index: dict[str, Any]) -> tuple[str, str]:
    """Report names guessed from ``index.json``: (task, embedding model).

    The task is the embedded input folder's name, the model the checkpoint's file name;
    ``--task-name`` and ``--model-name`` override both.
    """
    task_name = Path(index["input"]).name if index.get("input") else root.name
    if index.get("checkpoint"):
        return task_name, Path(index["checkpoint"]).stem
    return task_name, "random-init" if index.get("random_init") else "unknown"


def parse_args(args: list[str] | None) -> argparse.Namespace:
    """Parse the ``probe`` command line, filling unset options from ``--config``."""
    parser = argparse.ArgumentParser(
        prog="python -m lit_mrl probe",
        description="Grid-search MLP probes on cached embeddings (one batched ensemble per "
        "probe shape), select on validation, report test metrics.",
    )
    parser.add_argument("--embeddings", help="folder written by `python -m lit_mrl embed`")
    parser.add_argument("--config", help="probe YAML (configs/probe/*.yaml): data root, "
                        "batch size, metric, warm-up and max steps")  # fmt: skip
    parser.add_argument(
        "--grid", default="small", help="small (32 configs), paper (252) or a YAML file"
    )
    length = parser.add_mutually_exclusive_group()
    length.add_argument("--epochs", type=int, help="passes over the training split (default 20)")
    length.add_argument("--steps", type=int, help="optimisation steps per probe")
    parser.add_argument("--warmup-steps", type=int, help="default: min(1000, steps // 10)")
    parser.add_argument("--batch-size", type=int, help="default 256")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0], help="metrics are averaged")
    parser.add_argument("--metric", choices=["default", "mirex_key"], help="mirex_key: 24-key task")
    parser.add_argument("--out", help="results folder (default runs/probe/<task>-<model>)")
    parser.add_argument("--task-name", help="row name in reports (default: from index.json)")
    parser.add_argument("--model-name", help="column name in reports (default: from index.json)")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:1, ...")
    parser.add_argument("--max-params", type=int, default=2**27,
                        help="stacked parameters per ensemble (memory bound)")  # fmt: skip
    parser.add_argument("--wandb-project", default="lit_mrl")
    parser.add_argument("--no-wandb", action="store_true", help="do not log to W&B")
    opts = parser.parse_args(args)
    settings = config_settings(opts.config) if opts.config else {}
    for name in ("embeddings", "batch_size", "metric", "warmup_steps"):
        if getattr(opts, name) is None:
            setattr(opts, name, settings.get(name))
    if opts.steps is None and opts.epochs is None:
        opts.steps = settings.get("steps")
    opts.epochs = 20 if opts.steps is None and opts.epochs is None else opts.epochs
    opts.batch_size = opts.batch_size or 256
    opts.metric = opts.metric or "default"
    opts.config_task = settings.get("task")
    if opts.embeddings is None:
        parser.error("--embeddings is required (or data.init_args.root in --config)")
    try:
        opts.grid = load_grid(opts.grid)
    except ValueError as error:
        parser.error(str(error))
    return opts


def main(args: list[str] | None = None) -> dict[str, Any]:
    """``python -m lit_mrl probe``: search, write ``--out``, log to W&B, print test metrics."""
    opts = parse_args(args)
    started = time.perf_counter()
    data = EmbeddingDataModule(opts.embeddings, batch_size=opts.batch_size)
    if opts.config_task is not None and opts.config_task != data.task:
        raise ValueError(
            f"the config's model.init_args.task={opts.config_task} but {opts.embeddings} "
            f"holds a {data.task} task (index.json)"
        )
    num_train = len(data.load("train"))
    steps = opts.steps or opts.epochs * math.ceil(num_train / opts.batch_size)
    warmup = opts.warmup_steps if opts.warmup_steps is not None else min(1000, steps // 10)
    device = (
        opts.device if opts.device != "auto" else "cuda" if torch.cuda.is_available() else "cpu"
    )
    task_name, model_name = default_names(Path(opts.embeddings), data.index)
    task_name, model_name = opts.task_name or task_name, opts.model_name or model_name
    grid: Grid = opts.grid
    configs = grid.configs()
    print(
        f"probe search {task_name} / {model_name}: {data.task}, {len(configs)} configs "
        f"({grid.name} grid) x {len(opts.seeds)} seeds, {steps} steps (warm-up {warmup}), "
        f"batch {opts.batch_size}, {device}"
    )
    search = run_search(data, grid, steps, warmup, opts.seeds, opts.metric, device, opts.max_params)
    results = {
        "task": data.task,
        "task_name": task_name,
        "model_name": model_name,
        "embeddings": str(Path(opts.embeddings).resolve()),
        "metric": opts.metric,
        "primary_metric": primary_metrics(data.task, opts.metric)[0],
        "grid": grid.as_dict(),
        "num_configs": len(configs),
        "seeds": opts.seeds,
        "epochs": opts.epochs if opts.steps is None else None,
        "steps": steps,
        "warmup_steps": warmup,
        "batch_size": opts.batch_size,
        "device": device,
        "num_samples": {s: len(data.load(s)) for s in ("train", "val", "test")},
        "class_names": data.vocabulary,
        "selected_config": search["configs"][search["selected"]],
        **search,
        "wall_seconds": round(time.perf_counter() - started, 2),
    }
    out = Path(opts.out or Path("runs") / "probe" / f"{task_name}-{model_name}")
    path = write_results(results, out)
    if not opts.no_wandb:
        log_to_wandb(results, out, opts.wandb_project)
    selected = results["selected_config"]
    print(
        f"selected config {selected['id']}: hidden {selected['hidden_dims']}, dropout "
        f"{selected['dropout']}, L2 {selected['weight_decay']}, lr {selected['lr']}"
    )
    spread = len(opts.seeds) > 1
    for name, value in results["test"].items():
        std = f" ± {results['test_std'][name]:.4f}" if spread else ""
        print(f"test/{name}: {value:.4f}{std}")
    print(f"wrote {path}, grid.csv, per_class.csv ({results['wall_seconds']} s)")
    return results
