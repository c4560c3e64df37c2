"""The scale study: where a learned representation overtakes trivial features.

At what encoder size and pre-training length does it beat the log-mel baseline, and
where does the paper's ordering of the methods appear?

Pre-trains the demo encoder ladder (``configs/encoder/sfnfnet_<rung>.yaml``) on the demo
corpus with each method at several step counts, through ``python -m lit_mrl fit`` with the
demo's recipe (``configs/demo/<method>.yaml``; ``contrastive_aug`` adds
``configs/demo/augment.yaml``), then embeds and probes every point on the five downstream
tasks (``lit_mrl.evaluate``) beside random weights of the same rung and the log-mel
baseline. Every step resumes: rerun the same command and finished points are skipped.

    python -m bench.scale_study --out study_out --realism recorded
    python -m bench.scale_study --out study_out --points supervised:xs:900 contrastive:xs:900
    python -m bench.scale_study --out study_out --write-docs   # docs/scale_study.{md,png}

Pre-training compute is counted as 3 x the encoder's forward FLOPs per 3 s window
(``torch.utils.flop_counter``; forward + backward) x windows seen (a supervised step sees
``batch`` windows, a contrastive step ``2 x batch``): the frontend, projector and loader
are left out, being the same for every method.
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

REPO = Path(__file__).resolve().parents[1]
CONFIGS = REPO / "configs"
TASKS = ("pitch", "instrument", "key", "tempo", "tags")
METHODS = ("supervised", "contrastive", "contrastive_aug")
STEPS_PER_EPOCH = 12  # the demo recipe: 12 batches of 48 per epoch
BATCH = 48
DEFAULT_POINTS = [  # the demo's budget first, then size, then steps: each is a result
    "contrastive_aug:tiny:240",
    "contrastive:tiny:240",
    "supervised:tiny:240",
    "contrastive_aug:xs:240",
    "supervised:xs:240",
    "contrastive_aug:tiny:720",
    "supervised:tiny:720",
    "contrastive:xs:240",
]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=Path("study_out"))
    parser.add_argument("--realism", choices=("clean", "recorded"), default="recorded")
    parser.add_argument("--points", nargs="+", default=DEFAULT_POINTS,
                        help="method:rung:steps (default: the whole study)")  # fmt: skip
    parser.add_argument("--grid", default="demo")
    parser.add_argument("--seeds", type=int, default=1)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--write-docs", action="store_true",
                        help="write docs/scale_study.md and .png from what is done")  # fmt: skip
    parser.add_argument("--docs", type=Path, default=REPO / "docs")
    return parser.parse_args(argv)


def build_data(out: Path, realism: str, workers: int) -> Path:
    """Render and shard the demo corpus (clean or recorded) into ``out/data``."""
    from lit_mrl.demo.corpus import TASKS as CORPORA
    from lit_mrl.demo.corpus import build_corpus, shard_corpus

    data = out / "data"
    missing = [n for n in CORPORA if not (data / "shards" / n / "info.json").exists()]
    if missing:
        build_corpus(data, seed=0, workers=workers, tasks=missing, realism=realism)
        for name in missing:
            shard_corpus(data, name)
    return data / "shards"


def method_configs(method: str) -> list[Path]:
    """The demo recipe's config files of ``method``."""
    base = "contrastive" if method.startswith("contrastive") else "supervised"
    configs = [CONFIGS / "trainer.yaml", CONFIGS / "demo" / f"{base}.yaml"]
    if method == "contrastive_aug":
        configs.append(CONFIGS / "demo" / "augment.yaml")
    return configs


def pretrain(out: Path, shards: Path, method: str, rung: str, steps: int) -> dict:
    """Fit one point in a subprocess; returns its record (checkpoint, wall time)."""
    name = f"{method}-{rung}-{steps}"
    record_path = out / "points" / f"{name}.json"
    if record_path.exists():
        return json.loads(record_path.read_text())
    epochs = max(1, steps // STEPS_PER_EPOCH)
    run = out / "runs" / name
    shutil.rmtree(run, ignore_errors=True)  # an interrupted attempt starts over
    args = [sys.executable, "-m", "lit_mrl", "fit"]
    for config in [*method_configs(method), CONFIGS / "encoder" / f"sfnfnet_{rung}.yaml"]:
        args += ["-c", str(config)]
    tasks = "{" + ", ".join(f"{t}: {shards / t}" for t in TASKS) + "}"
    args += [
        f"--data.root={shards / 'pretrain'}", f"--data.steps_per_epoch={STEPS_PER_EPOCH}",
        f"--trainer.max_epochs={epochs}", f"--trainer.default_root_dir={run}",
        "--trainer.enable_progress_bar=false",
        "--trainer.callbacks+=lit_mrl.callbacks.OnlineProbe",
        f"--trainer.callbacks.tasks={tasks}",
        f"--trainer.callbacks.every_n_epochs={max(1, epochs // 3)}",
    ]  # fmt: skip
    started = time.perf_counter()
    env = {**os.environ, "WANDB_MODE": "disabled"}
    with open(out / "points" / f"{name}.log", "w") as log:
        code = subprocess.call(args, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT)
    if code:
        raise RuntimeError(f"fit of {name} exited {code}: see {out / 'points' / name}.log")
    wall = time.perf_counter() - started
    last = next(run.glob("**/checkpoints/last.ckpt"))
    ckpt = out / "checkpoints" / f"{name}.ckpt"
    ckpt.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(last, ckpt)
    record = {"name": name, "method": method, "rung": rung, "steps": epochs * STEPS_PER_EPOCH,
              "checkpoint": str(ckpt), "fit_seconds": round(wall, 1),
              "metrics_csv": str(next(run.glob("**/metrics.csv")))}  # fmt: skip
    record_path.write_text(json.dumps(record, indent=2) + "\n")
    return record


def forward_gflop(rung: str) -> float:
    """Forward GFLOP of one 3 s window through the rung's encoder."""
    import torch

    from bench.encoder_ladder import build_encoder, count_flops

    return count_flops(build_encoder(rung).eval(), torch.zeros(1, 1, 96, 300)) / 1e9


def evaluate_models(out: Path, shards: Path, models: dict[str, dict], opts) -> None:
    """Embed and probe the five tasks with each model (finished ones are skipped)."""
    from lit_mrl.evaluate import embed_all, probe_all

    tasks = {task: shards / task for task in TASKS}
    embed_all(out / "eval", tasks, models, 1)
    options = {"grid": opts.grid, "seeds": opts.seeds, "wandb": False}
    probe_all(out / "eval", tasks, list(models), options,
              task_names={t: f"demo-{t}" for t in TASKS}, metrics={"key": "mirex_key"})  # fmt: skip


def score(out: Path, model: str, task: str) -> dict:
    """The primary test metric of (model, task): mean, low, high (x100)."""
    from lit_mrl.tasks import task_metrics

    results = json.loads((out / "eval" / "results" / model / task / "results.json").read_text())
    metric = task_metrics(results["task"], results.get("metric", "default")).primary
    return {"metric": metric, **{part: round(100 * results[key][metric], 1)
            for part, key in (("mean", "test"), ("low", "test_low"), ("high", "test_high"))}}  # fmt: skip


def main(argv: list[str] | None = None) -> None:
    opts = parse_args(argv)
    out = opts.out.resolve()
    (out / "points").mkdir(parents=True, exist_ok=True)
    shards = build_data(out, opts.realism, opts.workers)
    points = [p.split(":") for p in opts.points]
    rungs = sorted({rung for _, rung, _ in points})
    from lit_mrl.evaluate import BASELINE, baseline_source

    baselines = {BASELINE: baseline_source()}
    for rung in rungs:
        configs = [str(CONFIGS / "demo" / "contrastive.yaml"),
                   str(CONFIGS / "encoder" / f"sfnfnet_{rung}.yaml")]  # fmt: skip
        baselines[f"random-{rung}"] = {"random_init": configs, "seed": 0}
    evaluate_models(out, shards, baselines, opts)
    gflop = {rung: forward_gflop(rung) for rung in rungs}
    for method, rung, steps in points:
        record = pretrain(out, shards, method, rung, int(steps))
        evaluate_models(out, shards, {record["name"]: {"checkpoint": record["checkpoint"]}}, opts)
        views = 2 if method.startswith("contrastive") else 1
        record["train_pflop"] = 3 * gflop[rung] * record["steps"] * BATCH * views / 1e6
        record["scores"] = {task: score(out, record["name"], task) for task in TASKS}
        (out / "points" / f"{record['name']}.json").write_text(json.dumps(record, indent=2) + "\n")
        print(f"{record['name']}: " + ", ".join(
            f"{t} {s['mean']}" for t, s in record["scores"].items()), flush=True)  # fmt: skip
    summary = {
        "realism": opts.realism,
        "baselines": {m: {t: score(out, m, t) for t in TASKS} for m in baselines},
        "forward_gflop": gflop,
        "points": [
            json.loads((out / "points" / f"{m}-{r}-{s}.json").read_text()) for m, r, s in points
        ],
    }
    (out / "study.json").write_text(json.dumps(summary, indent=2) + "\n")
    if opts.write_docs:
        from bench.scale_study_docs import write_docs

        write_docs(summary, opts.docs, "python -m bench.scale_study " + " ".join(sys.argv[1:]))


if __name__ == "__main__":
    main()
