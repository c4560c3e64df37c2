"""Pre-training through ``python -m lit_mrl fit`` keeps learning until its last step."""

import csv
import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[2]


def fit(method: str, shards: Path, out: Path, *extra: str) -> list[dict[str, float]]:
    """Run a short fit in a subprocess; returns the rows of its metrics.csv."""
    cmd = [
        sys.executable, "-m", "lit_mrl", "fit",
        "-c", "configs/trainer.yaml",
        "-c", f"configs/pretrain/{method}.yaml",
        "-c", "tests/configs/tiny.yaml",
        "-c", "tests/configs/learn.yaml",
        f"--data.root={shards}",
        f"--trainer.default_root_dir={out}",
        f"--trainer.logger.init_args.save_dir={out}",
        # every epoch's weights, to see the last epoch still change them
        "--trainer.callbacks+=ModelCheckpoint",
        "--trainer.callbacks.monitor=epoch",
        "--trainer.callbacks.mode=max",
        "--trainer.callbacks.save_top_k=-1",
        "--trainer.callbacks.filename={epoch}",
        *extra,
    ]  # fmt: skip
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    (metrics,) = out.glob("**/metrics.csv")
    with open(metrics) as file:
        return [{k: float(v) for k, v in row.items() if v} for row in csv.DictReader(file)]


def column(rows: list[dict[str, float]], name: str) -> list[float]:
    return [row[name] for row in rows if name in row]


def check_schedule_and_last_epoch(rows: list[dict[str, float]], out: Path) -> None:
    steps = 12 * 4  # tests/configs/learn.yaml: 12 epochs x 4 steps
    lr = column(rows, "train/lr")
    assert len(lr) == steps
    assert all(value > 0 for value in lr), lr  # the bug: LR 0 from the end of warm-up on
    assert max(lr) == pytest.approx(0.01, rel=1e-3)
    assert lr[-1] < 0.01 * max(lr)  # and the cosine reaches its end at the run's end
    last = torch.load(next(out.glob("**/last.ckpt")), weights_only=True)
    assert last["global_step"] == steps  # last.ckpt is the last state, not the best
    before = torch.load(next(out.glob("**/epoch=10.ckpt")), weights_only=True)
    changed = [
        name
        for name, value in last["state_dict"].items()
        if name.startswith("audio_encoder.") and not torch.equal(value, before["state_dict"][name])
    ]
    assert len(changed) > 10  # the encoder still trains in the last epoch


def test_supervised_fit_learns_its_tags_and_the_online_probe_sees_it(timbre_shards, tmp_path):
    rows = fit(
        "supervised", timbre_shards, tmp_path,
        "--trainer.callbacks+=lit_mrl.callbacks.OnlineProbe",
        f"--trainer.callbacks.tasks={{timbre: {timbre_shards}}}",
        "--trainer.callbacks.every_n_epochs=4",
        "--trainer.callbacks.clip_seconds=1.0",
    )  # fmt: skip
    check_schedule_and_last_epoch(rows, tmp_path)
    roc_auc = column(rows, "val/roc_auc")
    assert roc_auc[-1] >= 0.9, roc_auc
    online = column(rows, "online_probe/timbre/roc_auc")
    assert len(online) == 1 + 12 // 4  # before training, then every 4 epochs
    # the embeddings got better for the task at every probe after training started (32
    # evaluation clips near the ceiling: compare with the random encoder, not step to step)
    assert min(online[1:]) > online[0], online
    assert max(online[1:]) >= online[0] + 0.05, online


def test_contrastive_fit_lowers_its_validation_loss(timbre_shards, tmp_path):
    rows = fit("contrastive", timbre_shards, tmp_path, "--data.num_views=2")
    check_schedule_and_last_epoch(rows, tmp_path)
    val_loss = column(rows, "val/loss")
    assert val_loss[-1] < 0.75 * val_loss[0], val_loss
