"""The GPU recipe: the paper's full SF-NFNet-F0, pre-trained both ways, against the bars.

One command for a machine with one GPU and nothing on it (everything is rendered there)::

    python -m bench.gpu_recipe --out gpu_recipe_out              # about 7 minutes on one GPU
    python -m bench.gpu_recipe --out /tmp/r --smoke              # CPU, tiny encoder (tests)

1. renders the demo corpus (``lit_mrl.demo``, recorded realism, ``--scale``) with all cores;
2. pre-trains SF-NFNet-F0 (``configs/encoder/sfnfnet_<rung>.yaml``, the paper's model by
   default) with the demo's supervised and contrastive recipes
   (``configs/demo/{supervised,contrastive}.yaml``; the contrastive one with
   ``configs/demo/augment.yaml`` unless ``--no-augment``), each through
   ``python -m lit_mrl fit`` with bf16-mixed precision, ``--steps`` steps and a hard wall
   cap per fit (``--minutes``, Lightning's ``max_time``), the online probe on the five
   downstream tasks every quarter of the run;
3. prints, per method and task, the online probe's last score of the encoder beside the
   log-mel baseline and random weights of the same encoder (the same ridge probe on the
   same clips), and writes them to ``OUT/gpu_recipe.json``.

The online probe is a quick ridge probe on at most 200 clips per task (train -> valid), not
the report's grid search: it says whether the representation is above the bars yet.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CONFIGS = REPO / "configs"
TASKS = ("pitch", "instrument", "key", "tempo", "tags")
METHODS = ("supervised", "contrastive")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=Path("gpu_recipe_out"))
    parser.add_argument("--rung", default="f0", help="encoder ladder rung (configs/encoder/)")
    parser.add_argument("--steps", type=int, default=1200, help="steps per fit (at most)")
    parser.add_argument("--minutes", type=float, default=2.5, help="wall cap per fit")
    parser.add_argument("--batch", type=int, default=96, help="clips (pairs) per step")
    parser.add_argument("--scale", type=float, default=1.0, help="demo corpus scale")
    parser.add_argument("--workers", type=int, default=None, help="default: all cores")
    parser.add_argument("--accelerator", default="auto")
    parser.add_argument("--precision", default="bf16-mixed")
    parser.add_argument("--no-augment", action="store_true")
    parser.add_argument("--methods", nargs="+", choices=METHODS, default=list(METHODS))
    parser.add_argument("--smoke", action="store_true",
                        help="CPU, tiny rung, 4 steps, a tiny corpus: checks the script runs")  # fmt: skip
    opts = parser.parse_args(argv)
    if opts.smoke:
        opts.rung, opts.steps, opts.batch, opts.scale = "tiny", 4, 8, 0.03
        opts.accelerator, opts.precision, opts.workers = "cpu", "32-true", 1
    opts.workers = opts.workers or os.cpu_count() or 1
    return opts


def fit_args(opts: argparse.Namespace, shards: Path, method: str) -> list[str]:
    """The ``python -m lit_mrl fit`` command line of one method."""
    configs = [CONFIGS / "trainer.yaml", CONFIGS / "demo" / f"{method}.yaml"]
    if method == "contrastive" and not opts.no_augment:
        configs.append(CONFIGS / "demo" / "augment.yaml")
    configs.append(CONFIGS / "encoder" / f"sfnfnet_{opts.rung}.yaml")
    epochs = 4  # the online probe after each quarter
    tasks = "{" + ", ".join(f"{t}: {shards / t}" for t in TASKS) + "}"
    minutes = int(opts.minutes * 60)
    args = [sys.executable, "-m", "lit_mrl", "fit"]
    for config in configs:
        args += ["-c", str(config)]
    return [
        *args,
        f"--data.root={shards / 'pretrain'}",
        f"--data.batch_size={opts.batch}",
        f"--data.num_workers={min(opts.workers, 8)}",
        f"--data.steps_per_epoch={max(1, opts.steps // epochs)}",
        f"--trainer.max_epochs={epochs}",
        f"--trainer.max_time=00:00:{minutes // 60:02d}:{minutes % 60:02d}",
        f"--trainer.accelerator={opts.accelerator}",
        "--trainer.devices=1",
        f"--trainer.precision={opts.precision}",
        f"--trainer.default_root_dir={opts.out / 'runs' / method}",
        "--trainer.logger=[{class_path: lightning.pytorch.loggers.CSVLogger, "
        "init_args: {save_dir: '{default_root_dir}', name: lit_mrl}}]",
        "--trainer.enable_progress_bar=false",
        "--trainer.callbacks+=lit_mrl.callbacks.OnlineProbe",
        f"--trainer.callbacks.tasks={tasks}",
        "--trainer.callbacks.every_n_epochs=1",
    ]


def last_probe(metrics_csv: Path) -> dict[str, dict[str, float]]:
    """The last online-probe row of a run: ``{task/metric: {encoder, logmel, random, step}}``."""
    rows = list(csv.DictReader(metrics_csv.open()))
    found: dict[str, dict[str, float]] = {}
    for row in rows:
        for key, value in row.items():
            if not key.startswith("online_probe/") or key.endswith(("_logmel", "_random")):
                continue
            if value:
                found[key.removeprefix("online_probe/")] = {
                    "encoder": float(value),
                    "logmel": float(row[f"{key}_logmel"]),
                    "random": float(row[f"{key}_random"]),
                    "step": int(row["step"]),
                }
    return found


def main(argv: list[str] | None = None) -> int:
    opts = parse_args(argv)
    opts.out = opts.out.resolve()
    started = time.perf_counter()
    from lit_mrl.demo.run import build_data

    shards = build_data(opts.out, opts.scale, opts.workers, "recorded")
    print(f"corpus ready in {time.perf_counter() - started:.0f} s", flush=True)
    summary: dict = {"rung": opts.rung, "steps": opts.steps, "batch": opts.batch, "methods": {}}
    env = {**os.environ, "WANDB_MODE": "disabled"}
    for method in opts.methods:
        begun = time.perf_counter()
        log = opts.out / f"{method}.log"
        with log.open("w") as stream:
            code = subprocess.call(fit_args(opts, shards, method), cwd=REPO, env=env,
                                   stdout=stream, stderr=subprocess.STDOUT)  # fmt: skip
        if code:
            print(log.read_text()[-3000:], file=sys.stderr)
            raise SystemExit(f"gpu_recipe: the {method} fit exited {code} (log: {log})")
        metrics = max((opts.out / "runs" / method).glob("lit_mrl/version_*/metrics.csv"),
                      key=lambda p: p.stat().st_mtime)  # fmt: skip
        summary["methods"][method] = {
            "fit_seconds": round(time.perf_counter() - begun, 1),
            "probe": last_probe(metrics),
        }
        print(f"{method}: fit in {summary['methods'][method]['fit_seconds']} s", flush=True)
    lines = [f"online probe, SF-NFNet-F0 rung {opts.rung}  (encoder / log-mel / random)"]
    for method, result in summary["methods"].items():
        for task, s in result["probe"].items():
            lines.append(f"  {method:<12} {task:<22} step {s['step']:>5}  "
                         f"{s['encoder']:.3f} / {s['logmel']:.3f} / {s['random']:.3f}")  # fmt: skip
    print("\n".join(lines))
    summary["wall_seconds"] = round(time.perf_counter() - started, 1)
    (opts.out / "gpu_recipe.json").write_text(json.dumps(summary, indent=2) + "\n")
    print(f"wrote {opts.out / 'gpu_recipe.json'} ({summary['wall_seconds']} s in all)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
