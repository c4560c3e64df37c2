"""``python -m lit_mrl probe``: search probes on cached embeddings, report with intervals.

Takes the same YAML as ``fit`` (``configs/probe/<task>.yaml``: ``seed_everything``,
``trainer``, ``model`` = a ProbeModule, ``data`` = an EmbeddingDataModule) and honours
every key in it, strictly: the config's own probe (hidden layers, dropout, L2, LR) joins
the grid, its task, label count, class names and metric are checked against the
embeddings, steps, warm-up, batch size, seeds, splits and standardisation set the
search; a key the search cannot honour (``trainer.callbacks``, ``model.checkpoint``) or
does not know (``max_stpes``) is an error naming it. Options on the command line win.
"""

from __future__ import annotations

import difflib
import inspect
import time
from pathlib import Path
from typing import Any, Literal

from jsonargparse.typing import NonNegativeInt, PositiveInt

from lit_mrl.errors import UsageError

PROBE_CLASSES = ("ProbeModule", "lit_mrl.probe.ProbeModule", "lit_mrl.probe.module.ProbeModule")
DATA_CLASSES = (
    "EmbeddingDataModule",
    "lit_mrl.data.EmbeddingDataModule",
    "lit_mrl.data.embedding_datamodule.EmbeddingDataModule",
)
# trainer keys with a meaning for the search; any other trainer key is refused
TRAINER_KEYS = ("max_steps", "accelerator", "devices")


def probe(
    embeddings: str | None = None,
    out: str | None = None,
    grid: str = "small",
    seeds: PositiveInt = 3,
    epochs: PositiveInt = 100,
    min_steps: PositiveInt = 1000,
    max_steps: PositiveInt | None = None,
    steps: PositiveInt | None = None,
    warmup_steps: NonNegativeInt | None = None,
    batch_size: PositiveInt | None = None,
    patience: PositiveInt = 10,
    metric: Literal["default", "mirex_key"] | None = None,
    bootstrap: PositiveInt = 1000,
    task_name: str | None = None,
    model_name: str | None = None,
    device: str = "auto",
    threads: NonNegativeInt = 0,
    prune: bool = False,
    precision: Literal["32", "bf16-mixed"] = "32",
    max_params: PositiveInt = 2**27,
    wandb: bool = True,
    wandb_project: str = "lit_mrl",
    seed_everything: int = 0,
    trainer: dict | None = None,
    model: dict | None = None,
    data: dict | None = None,
) -> int:
    """Grid-search MLP probes on cached embeddings, select on validation, test with K seeds.

    Args:
        embeddings: folder written by `python -m lit_mrl embed` (or data.init_args.root).
        out: results folder (default runs/probe/<task>-<model>).
        grid: small (32 configs), paper (252), demo (8) or a YAML file with the four axes.
        seeds: seeds the selected config is trained with; the first also runs the grid.
        epochs: step budget in passes over the training split (within min/max steps).
        min_steps: smallest step budget (small datasets, with their small batches).
        max_steps: largest step budget (default: the config's max_steps, else 20000).
        steps: a fixed step budget instead of epochs.
        warmup_steps: linear warm-up steps (default: a tenth of the budget, at most 1000).
        batch_size: embeddings per minibatch (default: data.init_args.batch_size, else
            256 halved until an epoch has 10 minibatches, at least 32).
        patience: validation checks without improvement before a probe stops early.
        metric: mirex_key for the 24-key task (default: from the config, else default).
        bootstrap: bootstrap replicates of the 95 % test intervals.
        task_name: row name in reports (default: the embedded input folder's name).
        model_name: column name in reports (default: the checkpoint's file name).
        device: auto, cpu, cuda, cuda:1, ...
        threads: CPU threads of the search; 0 picks them from the cores this process may
            use and the load average (a busy machine gets fewer threads: threads that
            spin against other processes made linear probes 37x slower at load 5-6 on 2
            cores).
        prune: successive halving inside each ensemble: at rungs (1/27, 1/9, 1/3 of the
            budget) a config more than 0.02 behind its ensemble's best and outside its
            better half stops (marked pruned in grid.csv / results.json).
        precision: bf16-mixed trains the probes with bfloat16 matrix products (float32
            weights, optimizer and scores): products 3x faster on a CPU with AVX512-BF16
            (1.7-1.9x on an MTT-sized search), selections within seed noise
            (bench/README.md); 32 (default) is the float32 protocol.
        max_params: stacked parameters per ensemble (memory bound).
        wandb: log the grid, per-class table and test metrics to W&B (offline by default).
        wandb_project: W&B project.
        seed_everything: first seed (seeds are seed_everything, seed_everything + 1, ...).
        trainer: a probe config's trainer section (see the module docstring).
        model: a probe config's model section (a ProbeModule).
        data: a probe config's data section (an EmbeddingDataModule).

    Returns:
        0 (errors raise).
    """
    import torch

    from lit_mrl.catalog.from_probe import save_probe_head
    from lit_mrl.probe.budget import choose_threads
    from lit_mrl.probe.results import log_to_wandb, write_results

    settings = config_settings(trainer or {}, model or {}, data or {})
    started = time.perf_counter()
    torch.set_num_threads(threads or choose_threads())
    root = embeddings or settings.pop("root", None)
    if root is None:
        raise UsageError("give --embeddings (or data.init_args.root in --config)")
    search = prepare(root, settings, batch_size, metric, grid, device)
    budget = _budget(search, settings, epochs, min_steps, max_steps, steps, warmup_steps,
                     patience)  # fmt: skip
    first_seed = settings.get("init_seed", seed_everything)
    seed_list = [first_seed + i for i in range(seeds)]
    results = run(search, budget, seed_list, max_params, bootstrap, task_name, model_name, prune,
                  precision)  # fmt: skip
    results["wall_seconds"] = round(time.perf_counter() - started, 2)
    folder = Path(out or Path("runs") / "probe" / f"{results['task_name']}-{results['model_name']}")
    weights = results.pop("weights")  # not JSON: the head's own file
    path = write_results(results, folder)
    save_probe_head(folder, weights, search["data"], results, root, search["index"])
    if wandb:
        log_to_wandb(results, folder, wandb_project)
    print_summary(results, path)
    return 0


def _unknown(keys: set[str], known: set[str], where: str) -> None:
    for key in sorted(keys - known):
        close = difflib.get_close_matches(key, sorted(known), n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise UsageError(f"unknown key {where}.{key}{hint}")


def config_settings(trainer: dict, model: dict, data: dict) -> dict[str, Any]:
    """Check a probe config's sections key by key and return what the search uses.

    Raises:
        UsageError: naming an unknown key, a key the search cannot honour, or a class
            that is not a ProbeModule / EmbeddingDataModule.
    """
    from lit_mrl.data.embedding_datamodule import EmbeddingDataModule
    from lit_mrl.probe.module import ProbeModule

    settings: dict[str, Any] = {}
    for name, section, classes, cls in (
        ("model", model, PROBE_CLASSES, ProbeModule),
        ("data", data, DATA_CLASSES, EmbeddingDataModule),
    ):
        _unknown(set(section), {"class_path", "init_args"}, name)
        if section.get("class_path", classes[0]) not in classes:
            raise UsageError(f"{name}.class_path is {section['class_path']!r}, not {classes[1]}")
        init_args = section.get("init_args") or {}
        _unknown(set(init_args), set(inspect.signature(cls).parameters), f"{name}.init_args")
        settings.update(init_args)
    if settings.get("checkpoint") is not None:
        raise UsageError(
            "model.init_args.checkpoint probes a live encoder, which the search does not do: "
            "embed first (python -m lit_mrl embed) and remove the key"
        )
    for key in trainer:
        if key not in TRAINER_KEYS:
            raise UsageError(
                f"trainer.{key} is not used by the probe search (it trains without Lightning; "
                f"it reads only {', '.join('trainer.' + k for k in TRAINER_KEYS)}): remove it"
            )
    if trainer.get("max_steps", -1) > 0:
        settings.setdefault("max_steps", trainer["max_steps"])
    if trainer.get("accelerator") not in (None, "auto"):
        settings["accelerator"] = trainer["accelerator"]
    if settings.get("max_steps", -1) <= 0:
        settings.pop("max_steps", None)
    return settings


def prepare(
    root: str,
    settings: dict[str, Any],
    batch_size: int | None,
    metric: str | None,
    grid: str,
    device: str,
) -> dict[str, Any]:
    """Load and check the embeddings against the config; returns what the search needs.

    Raises:
        UsageError: a missing split, nothing to learn, or a config that does not fit.
    """
    import torch

    from lit_mrl.formats.embeddings import read_index
    from lit_mrl.metrics import check_task_metric
    from lit_mrl.probe.data import ProbeData, stage_splits
    from lit_mrl.probe.grid import ProbeConfig, load_grid

    data_args = {k: settings[k] for k in ("train_split", "val_split", "test_split", "standardize",
                                          "standardize_targets") if k in settings}  # fmt: skip
    index = read_index(root)
    names = stage_splits(**{k: v for k, v in data_args.items() if k.endswith("_split")})
    for stage in ("train", "val", "test"):  # every split exists, before any training
        split = index.splits.get(names[stage])
        if split is None or not split.parts:
            raise UsageError(f"{root} has no embeddings of split {names[stage]!r}")
    data = ProbeData.from_folder(root, **data_args, index=index)
    checks = {
        "task": data.task,
        "num_outputs": len(data.vocabulary),
        "in_dim": data.embed_dim,
        "class_names": data.vocabulary,
    }
    for key, actual in checks.items():
        if settings.get(key) is not None and settings[key] != actual:
            raise UsageError(f"model.init_args.{key}={settings[key]!r} but {root} has {actual!r}")
    chosen_metric = metric or settings.get("metric", "default")
    check_task_metric(data.task, len(data.vocabulary), chosen_metric)
    search_grid = load_grid(grid)
    own = {
        k: settings[k] for k in ("hidden_dims", "dropout", "weight_decay", "lr") if k in settings
    }
    if own:  # the config's own probe is searched too
        defaults = {"hidden_dims": (), "dropout": 0.5, "weight_decay": 0.0, "lr": 1e-4}
        merged = {**defaults, **own}
        config = ProbeConfig(tuple(merged["hidden_dims"]), float(merged["dropout"]),
                             float(merged["weight_decay"]), float(merged["lr"]))  # fmt: skip
        search_grid = search_grid.with_config(config)
    accelerator = settings.get("accelerator")
    if device == "auto" and accelerator in ("cpu", "cuda", "gpu"):
        device = "cpu" if accelerator == "cpu" else "cuda"
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    return {
        "data": data, "root": root, "index": index, "grid": search_grid, "metric": chosen_metric,
        "device": device, "batch_size": batch_size or settings.get("batch_size"),
    }  # fmt: skip


def _budget(
    search: dict[str, Any],
    settings: dict[str, Any],
    epochs: int,
    min_steps: int,
    max_steps: int | None,
    steps: int | None,
    warmup_steps: int | None,
    patience: int,
) -> Any:
    from lit_mrl.probe.budget import Budget

    return Budget.for_data(
        num_train=len(search["data"].split("train")),
        batch_size=search["batch_size"],
        epochs=epochs,
        min_steps=min_steps,
        max_steps=max_steps or settings.get("max_steps", 20000),
        steps=steps,
        warmup_steps=warmup_steps if warmup_steps is not None else settings.get("warmup_steps"),
        patience=patience,
    )


def default_names(root: Path, index: Any) -> tuple[str, str]:
    """Report names guessed from ``index.json``'s settings: (task, embedding model)."""
    made = index.settings
    task_name = Path(made["input"]).name if made.get("input") else root.name
    if made.get("checkpoint"):
        return task_name, Path(made["checkpoint"]).stem
    if made.get("model_file"):
        return task_name, Path(made["model_file"]).stem
    return task_name, "random-init" if made.get("random_init") else "unknown"


def run(
    search: dict[str, Any],
    budget: Any,
    seeds: list[int],
    max_params: int,
    replicates: int,
    task_name: str | None,
    model_name: str | None,
    prune: bool = False,
    precision: str = "32",
) -> dict[str, Any]:
    """Run the search and gather everything ``results.json`` records."""
    import torch

    from lit_mrl.probe.budget import PruneRule
    from lit_mrl.probe.search import run_search
    from lit_mrl.tasks import primary_metric

    data, grid, metric, device = search["data"], search["grid"], search["metric"], search["device"]
    names = default_names(Path(search["root"]), search["index"])
    task_name, model_name = task_name or names[0], model_name or names[1]
    configs = grid.configs()
    print(
        f"probe search {task_name} / {model_name}: {data.task}, {len(configs)} configs "
        f"({grid.name} grid), up to {budget.steps} steps (warm-up {budget.warmup_steps}, "
        f"early stopping{', pruning' if prune else ''}), batch {budget.batch_size}, then "
        f"{len(seeds)} seeds, {device} ({torch.get_num_threads()} CPU threads), precision {precision}"
    )
    found = run_search(data, grid, budget, seeds, metric, device, max_params, replicates,
                       pruning=PruneRule() if prune else None, precision=precision)  # fmt: skip
    return {
        "task": data.task,
        "task_name": task_name,
        "model_name": model_name,
        "embeddings": str(Path(search["root"]).resolve()),
        "metric": metric,
        "primary_metric": primary_metric(data.task, metric),
        "grid": grid.as_dict(),
        "num_configs": len(configs),
        "seeds": seeds,
        "budget": vars(budget),
        "device": device,
        "threads": torch.get_num_threads(),
        "pruning": vars(PruneRule()) if prune else None,
        "precision": precision,
        "num_samples": {s: len(data.split(s)) for s in ("train", "val", "test")},
        "class_names": data.vocabulary,
        "targets_standardized": bool(data.standardize_targets),
        "selected_config": found["configs"][found["selected"]],
        **found,
    }


def print_summary(results: dict[str, Any], path: Path) -> None:
    """The selected config and every test metric with its interval."""
    selected = results["selected_config"]
    print(
        f"selected config {selected['id']}: hidden {selected['hidden_dims']}, dropout "
        f"{selected['dropout']}, L2 {selected['weight_decay']}, lr {selected['lr']} "
        f"(best at step {selected['best_step']})"
    )
    seeds = len(results["seeds"])
    for name, value in results["test"].items():
        low, high = results["test_low"].get(name), results["test_high"].get(name)
        interval = f" [{low:.4f}, {high:.4f}]" if low is not None else ""
        print(f"test/{name}: {value:.4f}{interval}  (mean of {seeds} seeds, 95 % interval)")
    print(f"wrote {path}, grid.csv, per_class.csv ({results['wall_seconds']} s)")
