"""Training-loader crops/s: seek-read crops of long vs short tracks, and vs whole-track decoding.

Writes two synthetic shard datasets once per run (16 kHz FLAC, noise + tones; by default
16 tracks of 4 minutes and 400 of 10 seconds), then times
``ShardDataModule(batch_size, num_workers, num_views=V).train_dataloader()`` for each V:

* **seek-read** (what training runs, :class:`lit_mrl.data.stream.CropSample`): read the
  FLAC header for the length, draw the crops, seek and decode only the samples they need
  (:func:`lit_mrl.data.crops.read_crops`), on the 4-minute and on the 10-second tracks;
* **whole-decode** (the old way, :class:`WholeTrackCrops` below, a plain torch loader of
  public pieces): decode the whole FLAC with :func:`lit_mrl.formats.shards.decode_audio`,
  then crop the array with ``random_crop``/``paired_crops``; same workers and batch,
  4-minute tracks.

Crops/s count every view. Then, in this process alone: reading each sample's bytes out of
its shard (both datasets), whole-track decodes/s of the same bytes (what a whole-track
loader is bounded by: at most ``workers x decodes/s`` tracks/s) and seek-reads/s. Peak
RSS is summed over the loader process and its workers (the shuffle buffer holds where each
sample lies in its shard, not its bytes, so it should not grow with track length).
Example::

    python -m bench.loader_speed
    python -m bench.loader_speed --views 1 --long-tracks 8 --short-tracks 100 --batches 10
"""

from __future__ import annotations

import argparse
import tempfile
import time
import warnings
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader

from bench.rss import PeakTreeRSS, mib
from bench.synthetic import write_track_shards
from lit_mrl.data.crops import paired_crops, random_crop, random_span, read_crops
from lit_mrl.data.datamodule import ShardDataModule
from lit_mrl.formats.info import read_info, shard_paths
from lit_mrl.formats.shards import decode_audio, iter_shard


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--long-tracks", type=int, default=16)
    parser.add_argument("--long-seconds", type=float, default=240.0)
    parser.add_argument("--short-tracks", type=int, default=400)
    parser.add_argument("--short-seconds", type=float, default=10.0)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--workers", type=int, default=2, help="loader processes")
    parser.add_argument("--views", type=int, nargs="+", default=[1, 2], choices=[1, 2])
    parser.add_argument("--clip-seconds", type=float, default=3.0)
    parser.add_argument(
        "--shuffle-buffer",
        type=int,
        default=100,
        help="samples (encoded tracks) per worker's buffer; RSS grows with it",
    )
    parser.add_argument("--warmup-batches", type=int, default=2, help="untimed, per measurement")
    parser.add_argument("--batches", type=int, default=40, help="timed batches, per measurement")
    parser.add_argument(
        "--max-seconds",
        type=float,
        default=20.0,
        help="stop timing a measurement after this long (at least one batch per worker)",
    )
    parser.add_argument("--decodes", type=int, default=8, help="bare whole-track decodes timed")
    parser.add_argument("--seed", type=int, default=0)
    return parser.parse_args(argv)


class WholeTrackCrops(torch.utils.data.IterableDataset):
    """The old training stage, from public pieces: decode each whole FLAC, crop the array.

    Reads the shards of ``root``'s train split round-robin over loader workers, decodes
    every member's bytes with :func:`~lit_mrl.formats.shards.decode_audio` and cuts
    ``random_crop`` / ``paired_crops`` from the array, forever.
    """

    def __init__(self, root: Path, views: int, num_samples: int, max_offset: int, seed: int):
        self.paths = shard_paths(root, "train")
        self.views, self.num_samples, self.max_offset, self.seed = (
            views, num_samples, max_offset, seed
        )  # fmt: skip

    def __iter__(self):
        worker = torch.utils.data.get_worker_info()
        rank, world = (worker.id, worker.num_workers) if worker else (0, 1)
        rng = np.random.default_rng([self.seed, rank])
        mine = self.paths[rank::world] or self.paths
        while True:
            for path in mine:
                for sample in iter_shard(path, "bytes"):
                    audio, _ = decode_audio(sample["flac"])
                    if self.views == 1:
                        crops = [random_crop(audio, self.num_samples, rng)]
                    else:
                        crops = list(paired_crops(audio, self.num_samples, self.max_offset, rng))
                    yield {"audio": torch.from_numpy(np.stack(crops))}  # (V, num_samples)


def whole_track_loader(root: Path, views: int, opts: argparse.Namespace) -> DataLoader:
    """Batches of :class:`WholeTrackCrops` with the seek-read loader's workers and batch."""
    rate = read_info(root).sample_rate
    crops = WholeTrackCrops(root, views, round(opts.clip_seconds * rate), 5 * rate, opts.seed)
    return DataLoader(crops, batch_size=opts.batch_size, num_workers=opts.workers)


def time_loader(loader: Iterable, opts: argparse.Namespace) -> tuple[float, int, float, int]:
    """``(crops/s, timed batches, seconds, peak tree RSS bytes)`` of a training loader."""
    with PeakTreeRSS(interval=0.1) as peak:
        batches = iter(loader)
        for _ in range(opts.warmup_batches):  # worker start-up and the first buffer fill
            next(batches)
        start, count, crops = time.perf_counter(), 0, 0
        while count < opts.batches:
            batch = next(batches)
            count, crops = count + 1, crops + batch["audio"].shape[0] * batch["audio"].shape[1]
            elapsed = time.perf_counter() - start
            if count >= opts.workers and elapsed > opts.max_seconds:
                break
        elapsed = time.perf_counter() - start
        stop = getattr(batches, "close", None) or getattr(batches, "_shutdown_workers", None)
        if stop is not None:
            stop()  # stops the workers
    return crops / elapsed, count, elapsed, peak.peak_bytes


def bare_readers(roots: dict[str, Path], opts: argparse.Namespace) -> dict[str, float]:
    """One process, no loader: reading samples out of the shards, and decoding them.

    Returns ms per sample read from the tars (the whole FLAC's bytes, as the loader
    reads them) for each dataset, whole-track decodes/s and 1-crop seek-reads/s of the
    long tracks.
    """
    result = {}
    for name, root in roots.items():
        start = time.perf_counter()
        samples = [s for path in shard_paths(root, "train") for s in iter_shard(path)]
        result[f"{name}_read_ms"] = 1000 * (time.perf_counter() - start) / len(samples)
        if name == "long":
            flacs = [s["flac"] for s in samples]
    flacs = (flacs * opts.decodes)[: opts.decodes]
    result["mbytes"] = float(np.mean([len(f) for f in flacs])) / 1e6
    start = time.perf_counter()
    for data in flacs:
        decode_audio(data)
    result["decodes_per_s"] = len(flacs) / (time.perf_counter() - start)
    rng, num_samples = np.random.default_rng(opts.seed), round(opts.clip_seconds * 16000)
    reads = 20 * len(flacs)
    start = time.perf_counter()
    for i in range(reads):
        data = flacs[i % len(flacs)]
        read_crops(data, num_samples, lambda length, rate: [random_span(length, num_samples, rng)])
    result["seek_reads_per_s"] = reads / (time.perf_counter() - start)
    return result


def write_datasets(folder: Path, opts: argparse.Namespace) -> dict[str, Path]:
    """The long- and short-track datasets, each in about eight shards."""
    roots = {"long": folder / "long", "short": folder / "short"}
    for name, tracks, seconds in (
        ("long", opts.long_tracks, opts.long_seconds),
        ("short", opts.short_tracks, opts.short_seconds),
    ):
        start = time.perf_counter()
        write_track_shards(roots[name], tracks, seconds, max(1, tracks // 8), opts.seed)
        print(f"wrote {tracks} x {seconds:g} s tracks in {time.perf_counter() - start:.1f} s")
    return roots


def main(argv: list[str] | None = None) -> dict[str, float]:
    opts = parse_args(argv)
    warnings.filterwarnings("ignore", message=".*does not have many workers.*")
    label = {"long": f"{opts.long_seconds:g} s", "short": f"{opts.short_seconds:g} s"}
    rows, rates = [], {}
    with tempfile.TemporaryDirectory(prefix="loader_speed-") as tmp:
        roots = write_datasets(Path(tmp), opts)
        for views in opts.views:
            for path, data in (("seek-read", "long"), ("seek-read", "short"), ("whole", "long")):
                if path == "seek-read":
                    loader = ShardDataModule(
                        str(roots[data]), batch_size=opts.batch_size, num_workers=opts.workers,
                        clip_seconds=opts.clip_seconds, num_views=views,
                        shuffle_buffer=opts.shuffle_buffer, steps_per_epoch=10**6,
                        seed=opts.seed,
                    ).train_dataloader()  # fmt: skip
                else:
                    loader = whole_track_loader(roots[data], views, opts)
                rate, count, seconds, peak = time_loader(loader, opts)
                rates[(path, data, views)] = rate
                rows.append((path, label[data], views, rate, count, seconds, mib(peak)))
                print(f"  {path} {label[data]} V={views}: {rate:.0f} crops/s", flush=True)
        bare = bare_readers(roots, opts)
    print(
        f"\nbatch {opts.batch_size}, {opts.workers} workers, {opts.clip_seconds:g} s crops, "
        f"shuffle buffer {opts.shuffle_buffer}, {torch.get_num_threads()} torch threads"
    )
    print(
        f"{'path':<12}{'tracks':>8}{'views':>6}{'crops/s':>10}{'batches':>9}{'s':>7}{'peak RSS MiB':>14}"
    )
    for path, data, views, rate, count, seconds, peak in rows:
        print(f"{path:<12}{data:>8}{views:>6}{rate:>10.0f}{count:>9}{seconds:>7.1f}{peak:>14.0f}")
    print()
    ratios = {}
    for views in opts.views:
        long_short = rates[("seek-read", "long", views)] / rates[("seek-read", "short", views)]
        new_old = rates[("seek-read", "long", views)] / rates[("whole", "long", views)]
        ratios[f"long_vs_short_v{views}"], ratios[f"new_vs_old_v{views}"] = long_short, new_old
        print(f"V={views}: {label['long']} / {label['short']} tracks (seek-read): "
              f"{long_short:.2f}  (target >= 0.5, ideally ~1)")  # fmt: skip
        print(f"V={views}: seek-read / whole-decode on {label['long']} tracks: "
              f"{new_old:.1f}x  (target >= 20x)")  # fmt: skip
    decodes = bare["decodes_per_s"]
    print("one process, no loader:")
    print(f"  reading a sample out of its shard (whole FLAC bytes): {bare['long_read_ms']:.2f} "
          f"ms ({label['long']}), {bare['short_read_ms']:.2f} ms ({label['short']})")  # fmt: skip
    print(
        f"  whole-track decode ({label['long']}, {bare['mbytes']:.1f} MB FLAC): {decodes:.1f} "
        f"decodes/s = {decodes * opts.long_seconds:.0f}x real time; a whole-track loader with "
        f"{opts.workers} workers gets at most {opts.workers * decodes:.0f} tracks/s"
    )
    print(f"  seek-read of one {opts.clip_seconds:g} s crop ({label['long']}): "
          f"{bare['seek_reads_per_s']:.0f} crops/s")  # fmt: skip
    return ratios


if __name__ == "__main__":
    main()
