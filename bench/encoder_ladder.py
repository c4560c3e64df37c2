"""The SF-NFNet-F0 encoder ladder: size, FLOPs and CPU training throughput of each rung.

Each rung is a config overlay, ``configs/encoder/sfnfnet_<rung>.yaml`` (the encoder is
built from its ``class_path``/``init_args``). For every rung:

* parameters and embedding size;
* GFLOP of one forward pass over a 3 s window, ``(1, 1, 96, 300)``, counted by
  ``torch.utils.flop_counter.FlopCounterMode`` (2 FLOP per multiply-add);
* **synthetic** clips/s: a supervised fit step on an in-memory batch (log-mel frontend +
  encoder + projector + BCE loss + backward + AdamW step, the demo's
  ``SupervisedTaggingModule`` head), no data loading;
* **loader** clips/s and the split of a step's wall time, with batches from the real
  training loader (``ShardDataModule.train_dataloader()``, ``--workers`` processes) on
  synthetic multi-label shards: waiting for the loader, the log-mel frontend, the encoder
  forward + backward, and the rest (projector, loss, their backward, optimizer). The parts
  are timed with forward hooks on the ``AudioEncoder`` and its encoder and a gradient
  hook on the embedding, inside the module's own ``training_step``.

Once per run: the frontend's FLOPs per 3 s of 16 kHz audio (its matrix products counted by
``FlopCounterMode``, which does not count FFTs, plus the FFTs estimated at
``2.5 n log2 n`` per real FFT of size ``n``), and the loader's own cost: batches built in
this process (``num_workers=0``, i.e. the CPU time one batch of crops costs) and the
loader's throughput with ``--workers`` processes when nothing trains.

Example::

    python -m bench.encoder_ladder
    python -m bench.encoder_ladder --rungs tiny s --threads 1 --steps 10
    python -m bench.encoder_ladder --rungs f0 --batch-size 8 --steps 2 --skip-loader
"""

from __future__ import annotations

import argparse
import math
import tempfile
import time
import warnings
from pathlib import Path

import torch
import yaml
from lightning.pytorch.cli import instantiate_class
from torch import Tensor, nn
from torch.utils.flop_counter import FlopCounterMode

from bench.synthetic import write_track_shards
from lit_mrl.data.datamodule import ShardDataModule
from lit_mrl.methods import SupervisedTaggingModule
from lit_mrl.models import LogMelSpectrogram

RUNGS = ("tiny", "xs", "s", "m", "f0")
CONFIGS = Path(__file__).resolve().parent.parent / "configs" / "encoder"
TAGS = [f"tag{i:02d}" for i in range(12)]  # the demo's 12 pre-training families


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rungs", nargs="+", default=list(RUNGS), choices=RUNGS)
    parser.add_argument(
        "--train-rungs",
        nargs="*",
        default=["tiny", "xs", "s", "m"],
        choices=RUNGS,
        help="rungs whose training is timed (the others: size and FLOPs only)",
    )
    parser.add_argument("--batch-size", type=int, default=48, help="the demo's batch")
    parser.add_argument("--steps", type=int, default=10, help="timed steps per measurement")
    parser.add_argument("--warmup", type=int, default=2, help="untimed steps first")
    parser.add_argument("--threads", type=int, default=0, help="CPU threads (0: torch default)")
    parser.add_argument("--workers", type=int, default=2, help="loader processes (demo: 2)")
    parser.add_argument("--tracks", type=int, default=200, help="synthetic training tracks")
    parser.add_argument("--track-seconds", type=float, default=10.0)
    parser.add_argument("--skip-loader", action="store_true", help="no loader measurements")
    return parser.parse_args(argv)


def build_encoder(rung: str) -> nn.Module:
    """The encoder of ``configs/encoder/sfnfnet_<rung>.yaml``."""
    config = yaml.safe_load((CONFIGS / f"sfnfnet_{rung}.yaml").read_text())
    return instantiate_class((), config["model"]["init_args"]["encoder"])


def count_flops(module: nn.Module, *inputs: Tensor) -> int:
    """FLOPs of one forward pass (matrix products and convolutions only)."""
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        module(*inputs)
    return counter.get_total_flops()


def frontend_flops(frontend: LogMelSpectrogram, num_samples: int) -> tuple[int, int]:
    """``(counted, fft_estimate)`` FLOPs of the log-mel frontend on one clip."""
    counted = count_flops(frontend, torch.zeros(1, num_samples))
    frames = frontend.num_frames(num_samples)
    fft = round(frames * 2.5 * frontend.n_fft * math.log2(frontend.n_fft))
    return counted, fft


class StepTimer:
    """Wall-clock seconds spent in the log-mel frontend and the encoder, forward and backward.

    Forward pre-hooks on the ``AudioEncoder`` and on its ``encoder`` bound the frontend
    (everything the AudioEncoder does before the encoder: log-mel and standardisation);
    a forward hook ends the encoder's forward, and a gradient hook on its output marks
    when the backward pass reaches the embedding, so the encoder's backward runs from
    then until ``backward()`` returns (:meth:`backward_done`).
    """

    def __init__(self, audio_encoder: nn.Module) -> None:
        self.totals = {"frontend": 0.0, "encoder": 0.0}
        self._started = 0.0
        self._grad_at = 0.0
        audio_encoder.register_forward_pre_hook(self._start)
        audio_encoder.encoder.register_forward_pre_hook(self._frontend_done)
        audio_encoder.encoder.register_forward_hook(self._encoder_done)

    def _start(self, module, inputs) -> None:
        self._started = time.perf_counter()

    def _frontend_done(self, module, inputs) -> None:
        now = time.perf_counter()
        self.totals["frontend"] += now - self._started
        self._started = now

    def _encoder_done(self, module, inputs, output) -> None:
        self.totals["encoder"] += time.perf_counter() - self._started
        if output.requires_grad:
            output.register_hook(self._mark_grad)

    def _mark_grad(self, grad: Tensor) -> None:
        self._grad_at = time.perf_counter()

    def backward_done(self) -> None:
        """Call when ``backward()`` returns: adds the encoder's backward time."""
        self.totals["encoder"] += time.perf_counter() - self._grad_at

    def reset(self) -> None:
        self.totals = dict.fromkeys(self.totals, 0.0)


def supervised_module(rung: str) -> SupervisedTaggingModule:
    """The demo's supervised module (projector [256], input norm) around a rung's encoder."""
    torch.manual_seed(0)
    module = SupervisedTaggingModule(
        build_encoder(rung), num_tags=len(TAGS), projector_dims=[256], projector_input_norm=True
    )
    return module.train()


def time_steps(
    module: SupervisedTaggingModule, batches, opts: argparse.Namespace, timer: StepTimer
) -> dict[str, float]:
    """Seconds per step: loader wait, frontend, encoder (fwd + bwd), rest, total.

    The mean over the faster half of the timed steps: on shared cores a step that another
    job interrupts can take several times as long, and would hide the split.
    """
    optimizer = torch.optim.AdamW(module.parameters(), lr=3e-3, weight_decay=1e-4)
    steps = []
    for step in range(opts.warmup + opts.steps):
        timer.reset()
        start = time.perf_counter()
        batch = next(batches)
        fetched = time.perf_counter()
        loss = module.training_step(batch, step)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        timer.backward_done()
        optimizer.step()
        end = time.perf_counter()
        parts = {"loader": fetched - start, **timer.totals, "total": end - start}
        parts["rest"] = parts["total"] - parts["loader"] - parts["frontend"] - parts["encoder"]
        if step >= opts.warmup:
            steps.append(parts)
    faster = sorted(steps, key=lambda parts: parts["total"])[: max(1, len(steps) // 2)]
    return {name: sum(parts[name] for parts in faster) / len(faster) for name in steps[0]}


def in_memory_batches(batch_size: int, num_samples: int):
    """The same synthetic batch forever (no loader): 3 s of noise, random tags."""
    generator = torch.Generator().manual_seed(0)
    batch = {
        "audio": 0.1 * torch.randn(batch_size, 1, num_samples, generator=generator),
        "labels": (torch.rand(batch_size, len(TAGS), generator=generator) < 0.25).float(),
    }
    while True:
        yield batch


def loader_cost(root: Path, opts: argparse.Namespace) -> dict[str, float]:
    """Seconds per batch built in this process, and per batch from ``--workers`` workers."""
    result = {}
    for workers in (0, opts.workers):
        data = ShardDataModule(
            str(root), batch_size=opts.batch_size, num_workers=workers, clip_seconds=3.0,
            shuffle_buffer=500, steps_per_epoch=10**6, seed=0,
        )  # fmt: skip
        batches = iter(data.train_dataloader())
        for _ in range(opts.warmup + max(workers, 1)):  # start-up and the first buffer fill
            next(batches)
        seconds = []
        for _ in range(4 * opts.steps):
            start = time.perf_counter()
            next(batches)
            seconds.append(time.perf_counter() - start)
        batches.close()
        if workers == 0:  # CPU cost of a batch: the faster half, as for the steps
            seconds = sorted(seconds)[: len(seconds) // 2]
        result[f"workers_{workers}"] = sum(seconds) / len(seconds)
    return result


def measure_rung(rung: str, root: Path | None, opts: argparse.Namespace) -> dict[str, float]:
    """Size, FLOPs and (for training rungs) step times of one rung."""
    module = supervised_module(rung)
    audio_encoder = module.audio_encoder
    row: dict[str, float] = {
        "params": sum(p.numel() for p in audio_encoder.encoder.parameters()),
        "embed_dim": audio_encoder.embed_dim,
        "gflops": count_flops(audio_encoder.encoder, torch.zeros(1, 1, 96, 300)) / 1e9,
    }
    if rung not in opts.train_rungs:
        return row
    timer = StepTimer(audio_encoder)
    synthetic = time_steps(module, in_memory_batches(opts.batch_size, 48000), opts, timer)
    row["synthetic_clips_s"] = opts.batch_size / synthetic["total"]
    row.update({f"synthetic_{k}": v for k, v in synthetic.items()})
    if root is not None:
        data = ShardDataModule(
            str(root), batch_size=opts.batch_size, num_workers=opts.workers, clip_seconds=3.0,
            shuffle_buffer=500, steps_per_epoch=10**6, seed=0,
        )  # fmt: skip
        batches = iter(data.train_dataloader())
        timed = time_steps(module, batches, opts, timer)
        batches.close()
        row["loader_clips_s"] = opts.batch_size / timed["total"]
        row.update({f"loader_{k}": v for k, v in timed.items()})
    return row


def print_sizes(rows: dict[str, dict[str, float]], fe: dict[str, float], opts) -> None:
    """The run's settings, the frontend's and the loader's cost, and the ladder table."""
    print(
        f"\nbatch {opts.batch_size} x 3 s clips, {opts.workers} loader workers, "
        f"{torch.get_num_threads()} torch threads; step times: mean of the faster half of "
        f"{opts.steps} timed steps after {opts.warmup}"
    )
    print(
        f"log-mel frontend per 3 s clip: {fe['counted'] / 1e9:.4f} GFLOP counted (mel "
        f"products) + {fe['fft'] / 1e9:.4f} GFLOP FFT (estimated) = "
        f"{(fe['counted'] + fe['fft']) / 1e9:.4f} GFLOP"
    )
    if "workers_0" in fe:
        print(
            f"loader: a batch built in this process {1000 * fe['workers_0']:.0f} ms "
            f"({opts.batch_size / fe['workers_0']:.0f} clips/s on one core); "
            f"{opts.workers} workers, nothing training: "
            f"{opts.batch_size / fe[f'workers_{opts.workers}']:.0f} clips/s\n"
        )
    print("| rung | params | embed dim | GFLOP / 3 s window | synthetic clips/s | loader clips/s |")
    print("|---|---:|---:|---:|---:|---:|")
    for rung, row in rows.items():
        synthetic = f"{row['synthetic_clips_s']:.1f}" if "synthetic_clips_s" in row else "-"
        loader = f"{row['loader_clips_s']:.1f}" if "loader_clips_s" in row else "-"
        print(
            f"| {rung} | {row['params']:,} | {row['embed_dim']} | {row['gflops']:.3f} "
            f"| {synthetic} | {loader} |"
        )


def print_cpu_split(rows: dict[str, dict[str, float]], fe: dict[str, float]) -> None:
    """Where a step's CPU time goes, the loader's decoding included.

    With loader workers on as many cores as the step's threads, decoding competes with
    the step instead of waiting beside it, so the loader's share is its CPU time per
    batch (a batch built in this process), not the time the step waits for it.
    """
    timed = {r: row for r, row in rows.items() if "synthetic_total" in row}
    if not timed or "workers_0" not in fe:
        return
    print("\nsplit of a step's CPU time, ms (share): the loader's batch built in this")
    print("process, the rest from the in-memory step; last column: the real-loader step")
    print("| rung | loader | log-mel frontend | encoder fwd + bwd | rest | sum | real loader |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for rung, row in timed.items():
        parts = [fe["workers_0"]] + [row[f"synthetic_{k}"] for k in ("frontend", "encoder", "rest")]
        total = sum(parts)
        cells = [f"{1000 * v:.0f} ({100 * v / total:.0f} %)" for v in parts]
        real = f"{1000 * row['loader_total']:.0f}" if "loader_total" in row else "-"
        print(f"| {rung} | {' | '.join(cells)} | {1000 * total:.0f} | {real} |")


def print_steps(rows: dict[str, dict[str, float]]) -> None:
    """The measured split of each step, with in-memory and with real-loader batches."""
    for source in ("synthetic", "loader"):
        timed = {r: row for r, row in rows.items() if f"{source}_total" in row}
        if not timed:
            continue
        print(f"\n{source} batches, ms per step (share of the step)")
        print("| rung | loader wait | log-mel frontend | encoder fwd + bwd | rest | step |")
        print("|---|---:|---:|---:|---:|---:|")
        for rung, row in timed.items():
            total = row[f"{source}_total"]
            cells = [
                f"{1000 * row[f'{source}_{k}']:.0f} ({100 * row[f'{source}_{k}'] / total:.0f} %)"
                for k in ("loader", "frontend", "encoder", "rest")
            ]
            print(f"| {rung} | {' | '.join(cells)} | {1000 * total:.0f} |")


def main(argv: list[str] | None = None) -> dict[str, dict[str, float]]:
    opts = parse_args(argv)
    if opts.threads:
        torch.set_num_threads(opts.threads)
    warnings.filterwarnings("ignore", message=".*does not have many workers.*")
    warnings.filterwarnings("ignore", message=".*self.log.*")  # a bare module: no Trainer
    warnings.filterwarnings("ignore", message="Attribute 'encoder' is an instance of")
    counted, fft = frontend_flops(LogMelSpectrogram(), 48000)
    fe: dict[str, float] = {"counted": counted, "fft": fft}
    rows = {}
    with tempfile.TemporaryDirectory(prefix="encoder_ladder-") as tmp:
        root = None
        if not opts.skip_loader and set(opts.train_rungs) & set(opts.rungs):
            root = Path(tmp) / "shards"
            start = time.perf_counter()
            write_track_shards(
                root, opts.tracks, opts.track_seconds, max(1, opts.tracks // 8), tags=TAGS
            )
            print(f"wrote {opts.tracks} x {opts.track_seconds:g} s tracks in "
                  f"{time.perf_counter() - start:.1f} s", flush=True)  # fmt: skip
            fe.update(loader_cost(root, opts))
        for rung in opts.rungs:
            rows[rung] = measure_rung(rung, root, opts)
            print(f"  {rung}: {rows[rung]}", flush=True)
    print_sizes(rows, fe, opts)
    print_cpu_split(rows, fe)
    print_steps(rows)
    return rows


if __name__ == "__main__":
    main()
