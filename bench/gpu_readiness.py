"""GPU readiness: do the loaders keep the device busy in pre-training and in ``embed``?

One command prints everything for a first GPU run::

    python -m bench.gpu_readiness --workers 8
    python -m bench.gpu_readiness --smoke        # CPU, tiny encoder, a few steps (for tests)

Synthetic shards of full-length tracks (16 kHz FLAC, noise + tones; 256 x 4 minutes by
default) are written first, then two comparisons, each a ratio to its bare compute:

(a) **fit**: steps/s of a real contrastive ``fit`` (``configs/trainer.yaml`` +
    ``configs/pretrain/contrastive.yaml`` through the Lightning CLI: the full SF-NFNet-F0,
    120 pairs per device, 3 s crops, bf16-mixed, channels_last, the shard loader with
    ``--workers`` processes, the trainer's callbacks) over steps/s of the bare step
    (log-mel + encoder + projector + NT-Xent + backward + the config's AdamW) on a batch of
    the same size already on the device. Goal >= 0.9.
(b) **embed**: windows/s of the embed pipeline (the shard source in ``--workers`` loader
    processes -> :class:`~lit_mrl.embed.extractor.TimelineEmbedder` -> parts on disk, via
    ``lit_mrl.embed.command.embed_split``) over windows/s of bare encoder forwards on
    precomputed windows (``TimelineEmbedder.encode``, ``--batch-windows`` at a time).
    Steady state, from the first finished track to the last. Goal >= 0.9.

Both sides of each ratio run in this process, one after the other, on the same model.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

import lightning as L
import torch
from torch.utils.data import DataLoader

from bench.rss import PeakTreeRSS
from bench.synthetic import write_track_shards
from lit_mrl.cli.lightning import make_cli
from lit_mrl.embed.command import embed_split
from lit_mrl.embed.extractor import TimelineEmbedder
from lit_mrl.embed.sources import open_input
from lit_mrl.formats.embeddings import PartWriter
from lit_mrl.losses import nt_xent_loss
from lit_mrl.models.frontend import standardize

GOAL = 0.9
# full run / --smoke defaults of the options left unset
DEFAULTS = {
    "config": ("configs/pretrain/contrastive.yaml", "configs/demo/contrastive.yaml"),
    "batch_size": (120, 8),
    "warmup": (5, 2),
    "steps": (20, 4),
    "tracks": (256, 8),
    "track_seconds": (240.0, 30.0),
    "batch_windows": (128, 32),
    "precision": ("bf16-mixed", "32-true"),
    "workers": (8, 2),
}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="CPU, tiny encoder, few steps")
    parser.add_argument("--workers", type=int, help="loader processes (8; smoke 2)")
    parser.add_argument("--config", help="method config (paper contrastive; smoke: demo)")
    parser.add_argument("--batch-size", type=int, help="pairs per step (120; smoke 8)")
    parser.add_argument("--warmup", type=int, help="untimed steps / batches first (5; smoke 2)")
    parser.add_argument("--steps", type=int, help="timed fit steps (20; smoke 4)")
    parser.add_argument("--tracks", type=int, help="synthetic tracks (256; smoke 8)")
    parser.add_argument("--track-seconds", type=float, help="track length (240; smoke 30)")
    parser.add_argument("--batch-windows", type=int, help="embed windows per forward (128)")
    parser.add_argument("--precision", choices=["bf16-mixed", "32-true"], help="(bf16-mixed)")
    parser.add_argument("--no-channels-last", action="store_true")
    parser.add_argument("--compile", action="store_true", help="torch.compile the encoder")
    parser.add_argument("--shuffle-buffer", type=int, help="default: the config's")
    parser.add_argument("--skip-fit", action="store_true")
    parser.add_argument("--skip-embed", action="store_true")
    opts = parser.parse_args(argv)
    for name, (full, smoke) in DEFAULTS.items():
        if getattr(opts, name) is None:
            setattr(opts, name, smoke if opts.smoke else full)
    opts.device = "cpu" if opts.smoke or not torch.cuda.is_available() else "cuda"
    if opts.device == "cpu" and not opts.smoke:
        parser.error("no CUDA device: the paper settings are for a GPU (use --smoke on CPU)")
    return opts


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def build(root: Path, out: Path, opts: argparse.Namespace) -> Any:
    """The Lightning CLI's trainer, model and data for ``fit`` (not run)."""
    args = [
        "-c", "configs/trainer.yaml", "-c", opts.config,
        f"--data.root={root}", f"--data.batch_size={opts.batch_size}",
        f"--data.num_workers={opts.workers}", "--data.steps_per_epoch=1000000",
        f"--trainer.max_steps={opts.warmup + opts.steps}", f"--trainer.precision={opts.precision}",
        f"--trainer.accelerator={'gpu' if opts.device == 'cuda' else 'cpu'}",
        "--trainer.devices=1", "--trainer.logger=false", "--trainer.enable_progress_bar=false",
        f"--trainer.default_root_dir={out}",
        f"--model.init_args.channels_last={not opts.no_channels_last}",
        f"--model.init_args.compile={opts.compile}",
    ]  # fmt: skip
    if opts.shuffle_buffer is not None:
        args.append(f"--data.shuffle_buffer={opts.shuffle_buffer}")
    return make_cli(args, run=False)


def bare_fit_steps(module: Any, clip_samples: int, opts: argparse.Namespace) -> float:
    """Steps/s of log-mel + encoder + projector + NT-Xent + backward + optimizer step."""
    device = torch.device(opts.device)
    module.to(device).train()
    optimizer = module.optimizer(module.parameters())
    audio = 0.1 * torch.randn(opts.batch_size, 2, clip_samples, device=device)  # (B, 2, T)
    bf16 = opts.precision == "bf16-mixed"

    def step() -> None:
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
            views = audio.transpose(0, 1).reshape(2 * opts.batch_size, -1)  # (2B, T)
            z = module.head(module.embed(views))
            loss = nt_xent_loss(z[: opts.batch_size], z[opts.batch_size :], module.temperature)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    for _ in range(opts.warmup):
        step()
    sync(device)
    start = time.perf_counter()
    for _ in range(opts.steps):
        step()
    sync(device)
    rate = opts.steps / (time.perf_counter() - start)
    module.zero_grad(set_to_none=True)  # the optimizer and its state go with this frame
    return rate


class StepTimer(L.Callback):
    """Times training steps ``warmup`` .. ``warmup + steps`` and the gaps between steps.

    A gap (from one step's end to the next one's start) is where the loop waits for the
    loader and copies the batch to the device.
    """

    def __init__(self, warmup: int, steps: int) -> None:
        self.warmup, self.steps = warmup, steps
        self.start = self.end = 0.0
        self.gaps = 0.0
        self._last_end: float | None = None

    def on_train_batch_start(self, trainer: L.Trainer, *args: Any) -> None:
        if self._last_end is not None and self.warmup <= trainer.global_step:
            self.gaps += time.perf_counter() - self._last_end

    def on_train_batch_end(self, trainer: L.Trainer, *args: Any) -> None:
        done = trainer.global_step  # optimizer steps finished
        if done in (self.warmup, self.warmup + self.steps):
            sync(trainer.strategy.root_device)
            setattr(self, "start" if done == self.warmup else "end", time.perf_counter())
        self._last_end = time.perf_counter()

    @property
    def steps_per_second(self) -> float:
        """Timed steps over their wall time."""
        return self.steps / (self.end - self.start)


def fit_steps(cli: Any, opts: argparse.Namespace) -> tuple[float, float, int]:
    """``(steps/s, seconds between steps, peak RSS of loader + main)`` of the real fit."""
    timer = StepTimer(opts.warmup, opts.steps)
    cli.trainer.callbacks.append(timer)
    with PeakTreeRSS(interval=0.5) as peak:
        cli.trainer.fit(cli.model, datamodule=cli.datamodule)
    return timer.steps_per_second, timer.gaps, peak.peak_bytes


def bare_windows(embedder: TimelineEmbedder, opts: argparse.Namespace) -> float:
    """Windows/s of ``TimelineEmbedder.encode`` on standardised windows already on device."""
    n_mels = embedder.audio_encoder.frontend.n_mels
    shape = (opts.batch_windows, n_mels, embedder.window_frames)
    windows = standardize(torch.randn(shape, device=embedder.device))
    batches = max(opts.steps * 2, 10)
    for _ in range(opts.warmup):
        embedder.encode(windows)
    sync(embedder.device)
    start = time.perf_counter()
    for _ in range(batches):
        embedder.encode(windows)
    sync(embedder.device)
    return batches * opts.batch_windows / (time.perf_counter() - start)


class TimedWriter(PartWriter):
    """A :class:`PartWriter` that notes when each track arrives and its window count."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.arrivals: list[tuple[float, int]] = []

    def add(self, row: dict[str, Any]) -> Path | None:
        self.arrivals.append((time.perf_counter(), len(row["timeline"])))
        return super().add(row)


def embed_pipeline(
    embedder: TimelineEmbedder, root: Path, out: Path, opts: argparse.Namespace
) -> dict[str, float]:
    """Windows/s of the embed pipeline: whole run, and steady state (first to last track)."""
    source = open_input(root)
    dataset = source.tracks(
        "train", embedder.sample_rate, embedder.min_samples, set(),
        block_samples=embedder.chunk_samples,
    )  # fmt: skip
    loader = DataLoader(dataset, batch_size=None, num_workers=opts.workers)
    writer = TimedWriter(out, "train", 512)
    sync(embedder.device)
    start = time.perf_counter()
    with open(out / "errors.jsonl", "w") as errors:
        embedded, lost = embed_split(embedder, loader, writer, errors, None, "train")
    sync(embedder.device)
    total = time.perf_counter() - start
    if lost or embedded != opts.tracks:
        raise RuntimeError(f"embedded {embedded} of {opts.tracks} tracks, {lost} failed")
    (first, _), (last, _) = writer.arrivals[0], writer.arrivals[-1]
    windows = sum(count for _, count in writer.arrivals)
    steady = sum(count for _, count in writer.arrivals[1:])
    return {
        "windows": windows,
        "total_s": total,
        "windows_per_s": windows / total,
        "steady_s": last - first,
        "steady_windows_per_s": steady / (last - first) if last > first else float("nan"),
    }


def describe(opts: argparse.Namespace) -> str:
    """The settings, one line each."""
    device = torch.cuda.get_device_name() if opts.device == "cuda" else "cpu"
    return "\n".join([
        f"device {device}, torch {torch.__version__}, {os.cpu_count()} CPUs, "
        f"{torch.get_num_threads()} torch threads",
        f"data: {opts.tracks} synthetic tracks x {opts.track_seconds:g} s, 16 kHz FLAC; "
        f"{opts.workers} loader workers",
        f"fit: {opts.config}, {opts.batch_size} pairs per step, 3 s crops, {opts.precision}, "
        f"channels_last {not opts.no_channels_last}, compile {opts.compile}, "
        f"{opts.warmup} warm-up + {opts.steps} timed steps",
        f"embed: 3 s windows every 2 s, {opts.batch_windows} windows per forward, "
        f"bf16 {opts.precision == 'bf16-mixed'}",
    ])  # fmt: skip


def verdict(ratio: float) -> str:
    return f"{ratio:.2f} ({'meets' if ratio >= GOAL else 'misses'} the goal >= {GOAL})"


def main(argv: list[str] | None = None) -> dict[str, float]:
    opts = parse_args(argv)
    warnings.filterwarnings("ignore", message=".*does not have many workers.*")
    warnings.filterwarnings("ignore", message=".*could not find the monitored key.*")
    warnings.filterwarnings("ignore", message=".*args parameter is intended to run from within.*")
    warnings.filterwarnings("ignore", message=".*Total length of `list` across ranks is zero.*")
    results: dict[str, float] = {}
    print(describe(opts), flush=True)
    with tempfile.TemporaryDirectory(prefix="gpu_readiness-") as tmp:
        root, out = Path(tmp) / "shards", Path(tmp) / "out"
        start = time.perf_counter()
        write_track_shards(root, opts.tracks, opts.track_seconds, max(1, opts.tracks // 16))
        print(f"wrote {opts.tracks} tracks in {time.perf_counter() - start:.1f} s", flush=True)
        cli = build(root, out, opts)
        module = cli.model
        if not opts.skip_fit:
            bare = bare_fit_steps(module, cli.datamodule.clip_samples, opts)
            print(f"(a) bare step: {bare:.3f} steps/s = {bare * 2 * opts.batch_size:.1f} clips/s",
                  flush=True)  # fmt: skip
            fit, gaps, peak = fit_steps(cli, opts)
            results.update(fit_steps_per_s=fit, bare_steps_per_s=bare, fit_ratio=fit / bare)
            print(f"(a) fit step:  {fit:.3f} steps/s = {fit * 2 * opts.batch_size:.1f} clips/s; "
                  f"{gaps:.2f} s of {opts.steps / fit:.2f} s between steps (loader wait + "
                  f"transfer); peak RSS of main + workers {peak / 2**30:.1f} GiB")  # fmt: skip
            print(f"(a) fit / bare: {verdict(fit / bare)}", flush=True)
        if not opts.skip_embed:
            embedder = TimelineEmbedder(
                module.audio_encoder, batch_windows=opts.batch_windows, device=opts.device,
                bf16=opts.precision == "bf16-mixed",
            )  # fmt: skip
            bare = bare_windows(embedder, opts)
            print(f"(b) bare encoder forward: {bare:.1f} windows/s", flush=True)
            out.mkdir(parents=True, exist_ok=True)
            pipe = embed_pipeline(embedder, root, out, opts)
            results.update(embed_windows_per_s=pipe["steady_windows_per_s"],
                           bare_windows_per_s=bare,
                           embed_ratio=pipe["steady_windows_per_s"] / bare)  # fmt: skip
            print(f"(b) embed pipeline: {pipe['windows']} windows in {pipe['total_s']:.1f} s "
                  f"= {pipe['windows_per_s']:.1f} windows/s with start-up; steady state "
                  f"{pipe['steady_windows_per_s']:.1f} windows/s over "
                  f"{pipe['steady_s']:.1f} s")  # fmt: skip
            print(f"(b) embed / bare: {verdict(results['embed_ratio'])}")
            if pipe["steady_s"] < 5:
                print("    (under 5 s of steady state: use more --tracks for a firmer figure)")
    print(json.dumps({k: round(v, 4) for k, v in results.items()}))
    return results


if __name__ == "__main__":
    main()
