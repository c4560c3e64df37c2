"""Shared fixtures: tiny synthetic sharded datasets made at test time."""

import signal
from pathlib import Path

import numpy as np
import pytest
import torch

from lit_mrl.formats.shard_writer import write_dataset

ROOT = Path(__file__).resolve().parent.parent

SAMPLE_RATE = 16000
BANDS = {"low": (110.0, 220.0), "mid": (440.0, 880.0), "high": (1760.0, 3520.0)}


@pytest.fixture(autouse=True)
def sigint_handler_is_left_as_found():
    """No test (no fit, embed or verify run in-process) leaves its Ctrl-C handler behind."""
    before = signal.getsignal(signal.SIGINT)
    yield
    after = signal.getsignal(signal.SIGINT)
    signal.signal(signal.SIGINT, before)  # one leak fails one test, not every later one
    assert after == before, f"SIGINT handler left behind: {after!r}"


def synth_clip(rng: np.random.Generator, bands: list[str], seconds: float) -> np.ndarray:
    """Sines drawn from the named frequency bands plus a little noise, peak 0.5."""
    t = np.arange(int(seconds * SAMPLE_RATE)) / SAMPLE_RATE
    clip = 0.02 * rng.standard_normal(len(t))
    for band in bands:
        clip += np.sin(2 * np.pi * rng.uniform(*BANDS[band]) * t + rng.uniform(0, 6.3))
    clip = 0.5 * clip / np.abs(clip).max()
    return (np.round(clip * 32767) / 32768).astype(np.float32)  # exactly PCM_16


def make_split(rng, split: str, count: int, multiclass: bool = False):
    names = list(BANDS)
    for i in range(count):
        if multiclass:
            labels = [names[i % 3]]
        else:
            labels = [n for n in names if rng.random() < 0.5] or [names[i % 3]]
        seconds = float(rng.uniform(0.5, 1.0))
        yield f"{split}_{i:03d}", synth_clip(rng, labels, seconds), {"labels": labels}


TIMBRES = ("hiss", "square", "clicks")


def timbre_clip(rng: np.random.Generator, tags: list[str], seconds: float) -> np.ndarray:
    """A mix of the named timbres (noise, a square wave, a click train), peak 0.5."""
    t = np.arange(int(seconds * SAMPLE_RATE)) / SAMPLE_RATE
    clip = 0.01 * rng.standard_normal(len(t))
    for tag in tags:
        if tag == "hiss":
            clip += 0.3 * rng.standard_normal(len(t))
        elif tag == "square":
            f0 = rng.uniform(150, 600)
            for k in range(1, int(7000 / f0), 2):  # odd harmonics below 7 kHz
                clip += np.sin(2 * np.pi * k * f0 * t) / k
        else:
            starts = (np.arange(0, seconds, 1 / rng.uniform(5, 10)) * SAMPLE_RATE).astype(int)
            clicks = np.zeros(len(t))
            clicks[starts] = 1.0
            burst = np.exp(-np.arange(480) / 80) * rng.standard_normal(480)  # 30 ms decay
            clip += 2 * np.convolve(clicks, burst)[: len(t)]
    clip = 0.5 * clip / np.abs(clip).max()
    return (np.round(clip * 32767) / 32768).astype(np.float32)


@pytest.fixture(scope="session")
def timbre_shards(tmp_path_factory):
    """Multi-label timbre tagging a CNN can learn: 64 train, 32 valid, 8 test clips, 1-1.5 s."""
    root = tmp_path_factory.mktemp("timbre_shards")
    rng = np.random.default_rng(0)

    def split(name, count):
        for i in range(count):
            tags = [tag for tag in TIMBRES if rng.random() < 0.5] or [TIMBRES[i % 3]]
            clip = timbre_clip(rng, tags, float(rng.uniform(1.0, 1.5)))
            yield f"{name}_{i:03d}", clip, {"labels": tags}

    splits = {s: list(split(s, n)) for s, n in (("train", 64), ("valid", 32), ("test", 8))}
    write_dataset(root, "timbre", splits, SAMPLE_RATE, "multilabel", list(TIMBRES), max_samples=16)
    return root


@pytest.fixture(scope="session")
def tiny_shards(tmp_path_factory):
    """Multi-label band tagging: 16 train clips in 2 shards, 8 valid, 8 test, 0.5-1 s."""
    root = tmp_path_factory.mktemp("tiny_shards")
    rng = np.random.default_rng(0)
    splits = {s: list(make_split(rng, s, n)) for s, n in (("train", 16), ("valid", 8), ("test", 8))}
    write_dataset(
        root, "tiny", splits, SAMPLE_RATE, task="multilabel", vocabulary=list(BANDS), max_samples=8
    )
    return root


@pytest.fixture(scope="session")
def tiny_multiclass_shards(tmp_path_factory):
    """Single-label band classification, same sizes as ``tiny_shards``."""
    root = tmp_path_factory.mktemp("tiny_mc_shards")
    rng = np.random.default_rng(1)
    splits = {
        s: list(make_split(rng, s, n, multiclass=True))
        for s, n in (("train", 16), ("valid", 8), ("test", 8))
    }
    write_dataset(
        root,
        "tinymc",
        splits,
        SAMPLE_RATE,
        task="multiclass",
        vocabulary=list(BANDS),
        max_samples=8,
    )
    return root


@pytest.fixture(scope="session")
def tiny_checkpoint(tiny_shards, tmp_path_factory):
    """A supervised tiny-CNN checkpoint (embed_dim 8) trained for 2 steps through the CLI."""
    from lit_mrl.cli import main

    out = tmp_path_factory.mktemp("ckpt")
    args = [
        "fit",
        "-c", str(ROOT / "configs/pretrain/supervised.yaml"),
        "-c", str(ROOT / "tests/configs/tiny.yaml"),
        f"--data.root={tiny_shards}", f"--trainer.default_root_dir={out}",
        "--trainer.logger=false", "--seed_everything=0",
    ]  # fmt: skip
    with pytest.MonkeyPatch.context() as patch:
        # in-process (fast); the variables the CLI sets are undone when the context ends
        for name, value in (
            ("WANDB_MODE", "disabled"),
            ("PL_GLOBAL_SEED", "0"),
            ("PL_SEED_WORKERS", "0"),
        ):
            patch.setenv(name, value)
        main(args)
    (path,) = out.glob("**/*.ckpt")
    return path


@pytest.fixture(autouse=True, scope="session")
def _one_thread():
    """Tiny tensors gain nothing from a second thread, and OpenMP barriers stall for
    seconds when other jobs share the two cores; subprocess tests keep the default."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(autouse=True)
def _no_network(monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "disabled")
    monkeypatch.setenv("WANDB_SILENT", "true")
