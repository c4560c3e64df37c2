"""``python -m lit_mrl demo``: the whole pipeline on an offline toy corpus, on CPU.

1. render and shard the demo corpus (:mod:`lit_mrl.demo.corpus`);
2. pre-train the demo encoder twice, supervised on instrument tags and contrastive
   (SimCLR, each view through its own random EQ, gain and noise), each with an online
   probe of the downstream tasks every few epochs;
3. embed every downstream task with both last checkpoints, with random weights of the
   same encoder, and with a trivial baseline (log-mel band means and stds);
4. probe every (task, model) with a grid search, K seeds and bootstrap intervals;
5. write the report (markdown, CSV, chart) and print it.

Every step resumes: rerun the same command after an interruption and finished steps
are skipped.
"""

from __future__ import annotations

import shutil
import sys
import time
from pathlib import Path
from typing import Literal
from unittest.mock import patch

from jsonargparse.typing import PositiveFloat, PositiveInt

CONFIGS = Path(__file__).resolve().parents[2] / "configs"
DOWNSTREAM = ("pitch", "instrument", "key", "tempo", "tags")
METHODS = ("supervised", "contrastive")
# The configs of each pre-training. Contrastive pairs also get their own random EQ, gain
# and noise per view (configs/demo/augment.yaml): chosen by the scale study on validation
# (docs/scale_study.md: the online probe rose on 4 of 5 tasks with it at the demo's budget).
RECIPES = {
    "supervised": ("demo/supervised.yaml",),
    "contrastive": ("demo/contrastive.yaml", "demo/augment.yaml"),
}


def _step(title: str) -> None:
    print(f"\n=== {title} ===", flush=True)


def build_data(out: Path, scale: float, workers: int, realism: str = "recorded") -> Path:
    """Render and shard the demo corpus into ``out/data`` unless it is already there."""
    from lit_mrl.demo.corpus import TASKS, build_corpus, shard_corpus

    data = out / "data"
    missing = [n for n in TASKS if not (data / "shards" / n / "info.json").exists()]
    if missing:
        build_corpus(data, seed=0, scale=scale, workers=workers, tasks=missing, realism=realism)
        for name in missing:
            shard_corpus(data, name)
    return data / "shards"


def online_probe_args(shards: Path, every_n_epochs: int) -> list[str]:
    """CLI arguments adding the online probe of every downstream task (train -> valid)."""
    tasks = "{" + ", ".join(f"{task}: {shards / task}" for task in DOWNSTREAM) + "}"
    return [
        "--trainer.callbacks+=lit_mrl.callbacks.OnlineProbe",
        f"--trainer.callbacks.tasks={tasks}",
        f"--trainer.callbacks.every_n_epochs={every_n_epochs}",
    ]


def pretrain(out: Path, shards: Path, method: str, extra: list[str]) -> Path:
    """Fit one method on the pre-training corpus; returns a copy of its last checkpoint."""
    from lit_mrl.cli.lightning import make_cli

    ckpt_dir = out / "checkpoints" / method
    last = ckpt_dir / "last.ckpt"
    if last.exists():
        print(f"{last} exists: skipping pre-training ({method})")
        return last
    args = [
        "fit",
        "-c", str(CONFIGS / "trainer.yaml"),
        *[arg for config in RECIPES[method] for arg in ("-c", str(CONFIGS / config))],
        f"--data.root={shards / 'pretrain'}",
        f"--trainer.default_root_dir={out / 'runs'}",
        f"--trainer.logger={demo_loggers(method)}",
        *online_probe_args(shards, every_n_epochs=5),
        *extra,
    ]  # fmt: skip
    with patch.object(sys, "argv", sys.argv[:1]):  # the demo's own options are not fit's
        trainer = make_cli(args).trainer
    import wandb

    wandb.finish()  # Lightning leaves the run open; the next training gets its own
    # the monitor-less checkpoint is the last state (configs/trainer.yaml)
    trained = next(c.best_model_path for c in trainer.checkpoint_callbacks if c.monitor is None)
    ckpt_dir.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(trained, last)  # a fixed path marks the step done
    return last


def demo_loggers(method: str) -> str:
    """CSV and W&B loggers of one pre-training, named after it, under the run folder."""
    return (
        "[{class_path: lightning.pytorch.loggers.CSVLogger, init_args: {save_dir: "
        f"'{{default_root_dir}}', name: demo-{method}}}}}, {{class_path: "
        "lightning.pytorch.loggers.WandbLogger, init_args: {save_dir: '{default_root_dir}', "
        f"project: lit_mrl, name: demo-{method}}}}}]"
    )


def demo(
    out: str = "demo_out",
    scale: PositiveFloat = 1.0,
    workers: PositiveInt = 2,
    seeds: PositiveInt = 3,
    grid: str = "demo",
    realism: Literal["clean", "recorded"] = "recorded",
    fit_args: list[str] | None = None,
) -> int:
    """The whole pipeline on an offline toy corpus, on CPU (about 30 minutes on 2 cores).

    Args:
        out: output folder (rerun to resume).
        scale: multiplies the corpus size.
        workers: rendering processes.
        seeds: seeds of each selected probe (the intervals cover them).
        grid: probe grid (demo: 8 configs; small: 32; paper: 252; or a YAML file).
        realism: recorded: every clip through a random EQ, room and background noise
            (lit_mrl/demo/recording.py), as real catalogs are; clean: the bare renders.
        fit_args: extra Lightning CLI arguments for both pre-training runs.

    Returns:
        0 (errors raise).
    """
    from lit_mrl.evaluate import BASELINE, baseline_source, embed_all, probe_all, write_report

    folder = Path(out).resolve()
    started = time.perf_counter()
    _step(f"1/5 demo corpus ({realism})")
    shards = build_data(folder, scale, workers, realism)
    checkpoints = {}
    for i, method in enumerate(METHODS):
        _step(f"{2 + i}/5 pre-training: {method}")
        checkpoints[method] = pretrain(folder, shards, method, fit_args or [])
    _step("4/5 embeddings (log-mel baseline, random weights, supervised, contrastive)")
    models = {
        BASELINE: baseline_source(),
        "random": {"random_init": [str(CONFIGS / "demo" / "contrastive.yaml")], "seed": 0},
        **{m: {"checkpoint": str(c)} for m, c in checkpoints.items()},
    }
    tasks = {task: shards / task for task in DOWNSTREAM}
    embed_all(folder, tasks, models, workers=1)
    _step("5/5 probes and report")
    options = {"grid": grid, "seeds": seeds, "wandb": False, "max_steps": 2000}
    names = {task: f"demo-{task}" for task in DOWNSTREAM}
    folders = probe_all(folder, tasks, list(models), options, task_names=names)
    write_report(folder, folders)  # prints the table
    print(f"demo finished in {(time.perf_counter() - started) / 60:.1f} min; outputs in {folder}")
    return 0
