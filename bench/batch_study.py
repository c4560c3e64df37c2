"""The batch-size study: does contrastive pre-training lose with a smaller batch?

The paper's "ULarge" and "USmall" SimCLR models differ in the number of positive pairs per
step (1920 for ULarge). This is that comparison at a size two CPU cores can run: the demo's
contrastive recipe (``configs/demo/contrastive.yaml``) with one encoder rung
(``configs/encoder/sfnfnet_<rung>.yaml``) on the demo corpus, at several global batch sizes,
each probed on the five downstream tasks (``lit_mrl.evaluate``) beside random weights of
the same rung and the log-mel baseline. Every step resumes: rerun the same command and
finished points are skipped.

    python -m bench.batch_study --out batch_out --shards /path/to/demo/shards
    python -m bench.batch_study --out batch_out --points 12x1 48x1 192x1 24x2 --write-docs

A point is ``PAIRSxDEVICES``: pairs per device times processes (``24x2`` is two CPU
processes under DDP, negatives gathered from both: a global batch of 48). Every point sees
the same number of pairs (``--pairs``: equal epochs, so equal data and compute) with the
same schedule shape: AdamW at the recipe's peak LR, linear warm-up over the same fraction
of the run, cosine decay to 0 at its end. Only the batch, hence the number of steps, differs.
Compute is counted as in ``bench.scale_study``: 3 x forward FLOPs x windows seen.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

from bench.scale_study import (
    CONFIGS,
    REPO,
    TASKS,
    build_data,
    evaluate_models,
    forward_gflop,
    score,
)

WARMUP_FRACTION = 50 / 240  # the demo recipe's: 50 warm-up steps of 240
METRIC_NAMES = {"accuracy": "acc", "mirex_key": "MIREX", "roc_auc": "ROC-AUC"}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=Path("batch_out"))
    parser.add_argument("--shards", type=Path, default=None,
                        help="demo corpus shards to read (default: build them in OUT/data)")  # fmt: skip
    parser.add_argument("--realism", choices=("clean", "recorded"), default="recorded")
    parser.add_argument("--rung", default="xs")
    parser.add_argument("--points", nargs="+", default=["12x1", "48x1", "192x1"])
    parser.add_argument("--pairs", type=int, default=23040, help="pairs seen by every point")
    parser.add_argument("--epochs", type=int, default=20, help="validations per point")
    parser.add_argument("--grid", default="demo")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--write-docs", action="store_true",
                        help="write docs/batch_size.md's table and docs/batch_size.png")  # fmt: skip
    parser.add_argument("--docs", type=Path, default=REPO / "docs")
    return parser.parse_args(argv)


def plan(point: str, pairs: int, epochs: int) -> dict:
    """Steps and schedule of ``PAIRSxDEVICES`` for ``pairs`` pairs over ``epochs`` epochs."""
    per_device, devices = (int(n) for n in point.split("x"))
    batch = per_device * devices
    steps = pairs // batch
    if steps * batch != pairs or steps % epochs:
        raise SystemExit(f"{point}: {pairs} pairs are not {epochs} epochs of whole batches")
    return {"point": point, "per_device": per_device, "devices": devices, "batch": batch,
            "steps": steps, "steps_per_epoch": steps // epochs,
            "warmup_steps": round(steps * WARMUP_FRACTION)}  # fmt: skip


def fit_args(shards: Path, rung: str, spec: dict, epochs: int, run: Path) -> list[str]:
    args = [sys.executable, "-m", "lit_mrl", "fit", "-c", str(CONFIGS / "trainer.yaml"),
            "-c", str(CONFIGS / "demo" / "contrastive.yaml"),
            "-c", str(CONFIGS / "encoder" / f"sfnfnet_{rung}.yaml"),
            f"--data.root={shards / 'pretrain'}", f"--data.batch_size={spec['per_device']}",
            f"--data.steps_per_epoch={spec['steps_per_epoch']}", f"--trainer.max_epochs={epochs}",
            f"--model.init_args.scheduler.init_args.warmup_steps={spec['warmup_steps']}",
            f"--trainer.default_root_dir={run}", "--trainer.enable_progress_bar=false"]  # fmt: skip
    if spec["devices"] > 1:  # CPU processes; Lightning gives each cores // processes threads
        args += [f"--trainer.devices={spec['devices']}", "--trainer.accelerator=cpu",
                 "--trainer.strategy=ddp"]  # fmt: skip
    return args


def pretrain(out: Path, shards: Path, rung: str, spec: dict, epochs: int) -> dict:
    """Fit one point in a subprocess; returns its record (checkpoint, wall time)."""
    name = f"contrastive-{rung}-b{spec['batch']}" + (
        f"-ddp{spec['devices']}" if spec["devices"] > 1 else ""
    )
    record_path = out / "points" / f"{name}.json"
    if record_path.exists():
        return json.loads(record_path.read_text())
    run = out / "runs" / name
    shutil.rmtree(run, ignore_errors=True)  # an interrupted attempt starts over
    env = {**os.environ, "WANDB_MODE": "disabled"}
    started = time.perf_counter()
    with open(out / "points" / f"{name}.log", "w") as log:
        code = subprocess.call(fit_args(shards, rung, spec, epochs, run), cwd=REPO, env=env,
                               stdout=log, stderr=subprocess.STDOUT)  # fmt: skip
    if code:
        raise RuntimeError(f"fit of {name} exited {code}: see {out / 'points' / name}.log")
    wall = time.perf_counter() - started
    ckpt = out / "checkpoints" / f"{name}.ckpt"
    ckpt.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(next(run.glob("**/checkpoints/last.ckpt")), ckpt)
    record = {"name": name, "rung": rung, **spec, "checkpoint": str(ckpt),
              "fit_seconds": round(wall, 1), "metrics_csv": str(next(run.glob("**/metrics.csv")))}  # fmt: skip
    record_path.write_text(json.dumps(record, indent=2) + "\n")
    return record


def commit() -> str:
    """The checked-out commit (short hash), or ``unknown`` outside a git checkout."""
    head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, text=True,
                          capture_output=True).stdout.strip()  # fmt: skip
    return head or "unknown"


def main(argv: list[str] | None = None) -> None:
    opts = parse_args(argv)
    out = opts.out.resolve()
    (out / "points").mkdir(parents=True, exist_ok=True)
    shards = opts.shards.resolve() if opts.shards else build_data(out, opts.realism, opts.workers)
    specs = [plan(p, opts.pairs, opts.epochs) for p in opts.points]
    from lit_mrl.evaluate import BASELINE, baseline_source

    random_configs = [str(CONFIGS / "demo" / "contrastive.yaml"),
                      str(CONFIGS / "encoder" / f"sfnfnet_{opts.rung}.yaml")]  # fmt: skip
    baselines = {BASELINE: baseline_source(),
                 f"random-{opts.rung}": {"random_init": random_configs, "seed": 0}}  # fmt: skip
    evaluate_models(out, shards, baselines, opts)
    gflop = forward_gflop(opts.rung)
    points = []
    for spec in specs:
        record = pretrain(out, shards, opts.rung, spec, opts.epochs)
        evaluate_models(out, shards, {record["name"]: {"checkpoint": record["checkpoint"]}}, opts)
        record["train_pflop"] = 3 * gflop * opts.pairs * 2 / 1e6  # two windows per pair
        record["scores"] = {task: score(out, record["name"], task) for task in TASKS}
        (out / "points" / f"{record['name']}.json").write_text(json.dumps(record, indent=2) + "\n")
        print(f"{record['name']}: " + ", ".join(
            f"{t} {s['mean']}" for t, s in record["scores"].items()), flush=True)  # fmt: skip
        points.append(record)
    summary = {"rung": opts.rung, "pairs": opts.pairs, "epochs": opts.epochs, "commit": commit(),
               "shards": str(shards), "grid": opts.grid, "seeds": opts.seeds,
               "baselines": {m: {t: score(out, m, t) for t in TASKS} for m in baselines},
               "points": points}  # fmt: skip
    (out / "study.json").write_text(json.dumps(summary, indent=2) + "\n")
    if opts.write_docs:
        write_docs(summary, opts.docs, " ".join(sys.argv[1:]))


def cell(s: dict) -> str:
    return f"{s['mean']:.1f} ± {(s['high'] - s['low']) / 2:.1f}"


def table(summary: dict) -> list[str]:
    """Markdown rows: every point, then the baselines; the best per task in bold."""
    metrics = summary["baselines"]["logmel-stats"]
    header = "| model | pairs / step | steps | fit min | " + " | ".join(
        f"{t} {METRIC_NAMES.get(metrics[t]['metric'], metrics[t]['metric'])}" for t in TASKS
    )
    rows = [header + " |", "|---|---:|---:|---:|" + "---:|" * len(TASKS)]
    entries = [(f"contrastive {p['rung']}" + (f", {p['devices']} processes" if p["devices"] > 1
                else ""), f"{p['per_device']} x {p['devices']}" if p["devices"] > 1
                else str(p["batch"]), str(p["steps"]), f"{p['fit_seconds'] / 60:.0f}", p["scores"])
               for p in summary["points"]]  # fmt: skip
    entries += [(name, "-", "-", "-", scores) for name, scores in summary["baselines"].items()]
    best = {t: max(e[4][t]["mean"] for e in entries) for t in TASKS}
    for name, batch, steps, minutes, scores in entries:
        cells = [f"**{cell(scores[t])}**" if scores[t]["mean"] == best[t] else cell(scores[t])
                 for t in TASKS]  # fmt: skip
        rows.append(f"| {name} | {batch} | {steps} | {minutes} | " + " | ".join(cells) + " |")
    return rows


def plot(summary: dict, path: Path) -> None:
    """Score vs global batch per task, with the two baselines as bands."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(3.4 * len(TASKS), 3.2))
    axes = fig.subplots(1, len(TASKS), squeeze=False)[0]
    single = sorted((p for p in summary["points"] if p["devices"] == 1), key=lambda p: p["batch"])
    ddp = [p for p in summary["points"] if p["devices"] > 1]
    for ax, task in zip(axes, TASKS, strict=True):
        for (name, scores), colour in zip(summary["baselines"].items(), ("black", "grey"),
                                          strict=True):  # fmt: skip
            ax.axhline(scores[task]["mean"], color=colour, linestyle="--", label=name)
            ax.axhspan(scores[task]["low"], scores[task]["high"], color=colour, alpha=0.08)
        for group, style in ((single, "o-"), (ddp, "s")):
            if group:
                y = [p["scores"][task]["mean"] for p in group]
                err = [[v - p["scores"][task]["low"] for v, p in zip(y, group, strict=True)],
                       [p["scores"][task]["high"] - v for v, p in zip(y, group, strict=True)]]  # fmt: skip
                ax.errorbar([p["batch"] for p in group], y, yerr=err, fmt=style, capsize=3,
                            color="tab:orange" if group is single else "tab:purple",
                            label="1 process" if group is single else "2 processes (DDP)")  # fmt: skip
        ax.set_xscale("log", base=2)
        ax.set_xlabel("pairs per step (global)")
        ax.set_title(f"{task} ({summary['baselines']['logmel-stats'][task]['metric']})")
    axes[0].set_ylabel("test score x100 (95 % interval)")
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=4, fontsize=8)
    fig.tight_layout(rect=(0, 0.1, 1, 1))
    FigureCanvasAgg(fig).print_png(str(path))


def write_docs(summary: dict, docs: Path, command: str) -> None:
    """Replace the table block of ``batch_size.md`` (the prose is kept) and write the plot."""
    docs.mkdir(parents=True, exist_ok=True)
    plot(summary, docs / "batch_size.png")
    block = "\n".join([
        f"<!-- table: written by python -m bench.batch_study {command} -->",
        f"Rung `{summary['rung']}`, {summary['pairs']:,} pairs per point, commit "
        f"{summary['commit']}. Test split, x100, mean ± half the 95 % interval over test items "
        f"and {summary['seeds']} probe seeds; probes: the `{summary['grid']}` grid.",
        "", *table(summary), "<!-- /table -->",
    ])  # fmt: skip
    target = docs / "batch_size.md"
    text = target.read_text() if target.exists() else ""
    if "<!-- /table -->" in text:
        start, end = text.index("<!-- table:"), text.index("<!-- /table -->") + 15
        target.write_text(text[:start] + block + text[end:])
    else:
        target.write_text("# Batch size in contrastive pre-training\n\n" + block + "\n")


if __name__ == "__main__":
    main()
