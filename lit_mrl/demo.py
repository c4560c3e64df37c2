"""``python -m lit_mrl demo``: the whole pipeline on an offline toy corpus, on CPU.

Builds the demo corpus (data_prep.demo), pre-trains the tiny SF-NFNet-F0 twice
(supervised on instrument tags, contrastive SimCLR), embeds every downstream task with
both checkpoints and with random weights, probes each task and prints the report.
Every step resumes: rerun the same command after an interruption and finished steps
are skipped.
"""

import argparse
import shutil
import time
from pathlib import Path

from lit_mrl import cli, embed, probe_search, report
from lit_mrl.embedding_store import INDEX_NAME

CONFIGS = Path(__file__).resolve().parent.parent / "configs"
DOWNSTREAM = ("pitch", "instrument", "key", "tempo", "tags")
METHODS = ("supervised", "contrastive")


def _step(title: str) -> None:
    print(f"\n=== {title} ===", flush=True)


def build_data(out: Path, scale: float, workers: int) -> Path:
    """Render and shard the demo corpus into ``out/data`` unless it is already there."""
    from data_prep.demo import TASKS, build_corpus, shard_corpus

    data = out / "data"
    missing = [n for n in TASKS if not (data / "shards" / n / "info.json").exists()]
    if missing:
        build_corpus(data, seed=0, scale=scale, workers=workers, tasks=missing)
        for name in missing:
            shard_corpus(data, name, TASKS[name].task, workers)
    return data / "shards"


def pretrain(out: Path, shards: Path, method: str, extra: list[str]) -> Path:
    """Fit one method on the pre-training corpus; returns its last checkpoint."""
    ckpt_dir = out / "checkpoints" / method
    last = ckpt_dir / "last.ckpt"
    if last.exists():
        print(f"{last} exists: skipping pre-training ({method})")
        return last
    args = [
        "fit",
        "-c", str(CONFIGS / "trainer.yaml"),
        "-c", str(CONFIGS / "demo" / f"{method}.yaml"),
        f"--data.root={shards / 'pretrain'}",
        f"--trainer.default_root_dir={out / 'runs'}",
        f"--trainer.logger.init_args.save_dir={out / 'runs'}",
        f"--trainer.logger.init_args.name=demo-{method}",
        *extra,
    ]  # fmt: skip
    trainer = cli.make_cli(args).trainer
    # the monitor-less checkpoint is the last state (configs/trainer.yaml)
    trained = next(c.best_model_path for c in trainer.checkpoint_callbacks if c.monitor is None)
    import wandb

    wandb.finish()  # Lightning leaves the run open; the next training gets its own
    ckpt_dir.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(trained, last)  # a fixed path marks the step done
    return last


def embed_all(out: Path, shards: Path, models: dict[str, list[str]]) -> None:
    """Embed every downstream task with every model (skips finished folders)."""
    for model, source in models.items():
        for task in DOWNSTREAM:
            dest = out / "embeddings" / model / task
            if (dest / INDEX_NAME).exists():
                continue
            embed.main([*source, "--input", str(shards / task), "--out", str(dest)])


def probe_all(out: Path, models: list[str], steps: int) -> list[Path]:
    """Grid-search a probe per (task, model); returns the results folders."""
    folders = []
    for model in models:
        for task in DOWNSTREAM:
            dest = out / "results" / model / task
            folders.append(dest)
            if (dest / "results.json").exists():
                continue
            args = [
                "--embeddings", str(out / "embeddings" / model / task),
                "--out", str(dest),
                "--steps", str(steps),
                "--task-name", f"demo-{task}",
                "--model-name", model,
            ]  # fmt: skip
            if task == "key":
                args += ["--metric", "mirex_key"]
            probe_search.main(args)
    return folders


def main(args: list[str] | None = None) -> None:
    """Entry point of ``python -m lit_mrl demo``."""
    parser = argparse.ArgumentParser(prog="lit_mrl demo", description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("demo_out"), help="output folder")
    parser.add_argument("--scale", type=float, default=1.0, help="corpus size multiplier")
    parser.add_argument("--workers", type=int, default=2, help="rendering/sharding processes")
    parser.add_argument("--probe-steps", type=int, default=400, help="steps per probe")
    parser.add_argument(
        "--fit-args", nargs=argparse.REMAINDER, default=[],
        help="extra Lightning CLI arguments for both pre-training runs (last option)",
    )  # fmt: skip
    opts = parser.parse_args(args)
    out = opts.out.resolve()
    started = time.perf_counter()
    _step("1/5 demo corpus")
    shards = build_data(out, opts.scale, opts.workers)
    checkpoints = {}
    for i, method in enumerate(METHODS):
        _step(f"{2 + i}/5 pre-training: {method}")
        checkpoints[method] = pretrain(out, shards, method, opts.fit_args)
    _step("4/5 embeddings (random weights, supervised, contrastive)")
    models = {
        "random": ["--random-init", str(CONFIGS / "demo" / "contrastive.yaml"), "--seed", "0"],
        **{m: ["--checkpoint", str(c)] for m, c in checkpoints.items()},
    }
    embed_all(out, shards, models)
    _step("5/5 probes and report")
    folders = probe_all(out, list(models), opts.probe_steps)
    report.main(
        [
            *map(str, folders),
            "--out", str(out / "report.md"),
            "--csv", str(out / "report.csv"),
            "--png", str(out / "report.png"),
        ]
    )  # fmt: skip
    print((out / "report.md").read_text())
    print(f"demo finished in {(time.perf_counter() - started) / 60:.1f} min; outputs in {out}")
