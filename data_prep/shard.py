"""Shard a folder or manifest of audio into WebDataset tars: ``python -m data_prep.shard --help``.

Workers decode, downmix, resample (once, soxr) and FLAC-encode; the main
process writes samples in a fixed order, so reruns are reproducible. A rerun
after a crash skips inputs whose keys are already in complete shards.
"""

from __future__ import annotations

import argparse
import fcntl
import json
import os
import sys
import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ProcessPoolExecutor
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf
import soxr
from tqdm import tqdm

from data_prep.inputs import Item, UsageError, collect_items, pending
from lit_mrl.data.shards import (
    INFO_NAME,
    TASKS,
    DatasetInfo,
    ShardWriter,
    SplitInfo,
    atomic_write,
    check_names,
    encode_flac,
    parse_shard_name,
    read_info,
    read_shard_meta,
    write_info,
)

DESCRIPTION = """\
Decode, downmix, resample and FLAC-encode audio into WebDataset shards, with
info.json and errors.jsonl ({"path", "reason"} per failed input) in --out.
Rerun the same command after a crash to resume.

manifest .jsonl: one object per line: path (required; relative to the
  manifest's folder or absolute), split (default train), labels (list or
  string), targets (list of numbers), key, track_id
manifest .csv: header with path, split, labels (';'-separated), targets, key

partitions: run with --num-partitions K --partition-index I for each I, then
  python -m data_prep.shard merge-info OUT [--num-partitions K]
"""
EXIT_CODES = """exit status:
  0  every input was sharded
  1  some inputs failed (listed in errors.jsonl); every good input was sharded
  2  usage or configuration error (bad flag, bad manifest line, two inputs
     with one key, --out holding shards at another sample rate, --out in use);
     nothing was sharded
"""
SHORT_SECONDS = 1.0
READ_BLOCK_FRAMES = 1 << 18  # about 6 s at 44.1 kHz: bounds memory on long tracks


# ---------------------------------------------------------------- audio (in workers)


def load_audio(path: Path, sample_rate: int, max_seconds: float | None) -> np.ndarray:
    """Decode ``path`` to float32 mono ``(T,)`` at ``sample_rate``, block by block.

    Raises:
        ValueError: for zero samples or NaN/Inf.
        soundfile.SoundFileError: if libsndfile cannot read the file.
    """
    with sf.SoundFile(path) as file:
        frames = -1 if max_seconds is None else int(max_seconds * file.samplerate)
        resampler = None
        if file.samplerate != sample_rate:
            resampler = soxr.ResampleStream(file.samplerate, sample_rate, 1, quality="HQ")
        pieces, frames_read = [], 0
        for block in file.blocks(READ_BLOCK_FRAMES, frames=frames, dtype="float32", always_2d=True):
            if not np.isfinite(block).all():
                raise ValueError("audio contains NaN or Inf")
            mono = block.mean(axis=1, dtype=np.float32)
            pieces.append(mono if resampler is None else resampler.resample_chunk(mono))
            frames_read += len(block)
        if frames_read == 0:
            raise ValueError("zero-length audio (0 samples)")
        if resampler is not None:
            pieces.append(resampler.resample_chunk(np.zeros(0, np.float32), last=True))
    return np.concatenate(pieces).astype(np.float32, copy=False)


def prepare(job: tuple[Path, int, float | None]) -> tuple[bytes, int, list[str]] | str:
    """Worker: ``(flac, num_samples, warnings)``, or the reason the file is unusable."""
    path, sample_rate, max_seconds = job
    try:
        if path.stat().st_size == 0:
            return "empty file (0 bytes)"
        audio = load_audio(path, sample_rate, max_seconds)
    except sf.SoundFileError as err:
        # libsndfile's text repeats the path and can be misleading ("possibly a pipe?")
        message = str(err).removeprefix(f"Error opening {str(path)!r}: ")
        return f"not decodable audio (libsndfile: {message})"
    except (ValueError, OSError) as err:
        return str(err)
    if len(audio) == 0:  # a few input samples can resample to none
        return "zero-length audio after resampling"
    warnings = []
    peak = float(np.abs(audio).max())
    if peak < 0.5 / 32768:
        warnings.append("silent")
    if peak > 1.0:
        warnings.append("clipped")
    if len(audio) < SHORT_SECONDS * sample_rate:
        warnings.append("short")
    return encode_flac(audio, sample_rate), len(audio), warnings


def ordered_map(fn: Callable[[Any], Any], jobs: Iterable[Any], workers: int) -> Iterator[Any]:
    """``map(fn, jobs)`` over ``workers`` processes (0: in this one), in order, with few results held."""
    if workers == 0:
        yield from map(fn, jobs)
        return
    with ProcessPoolExecutor(
        workers, initializer=_exit_with_parent, initargs=(os.getpid(),)
    ) as pool:
        pending = deque()
        try:
            for job in jobs:
                pending.append(pool.submit(fn, job))
                if len(pending) >= 4 * workers:
                    yield pending.popleft().result()
            while pending:
                yield pending.popleft().result()
        finally:
            pool.shutdown(cancel_futures=True)


def _exit_with_parent(parent: int) -> None:
    # pool workers otherwise outlive a kill -9 of the main process, blocked on their queue
    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(1.0)
        os._exit(1)

    threading.Thread(target=watch, daemon=True).start()


# ---------------------------------------------------------------- output folder


@dataclass
class ShardRecord:
    """One complete shard, as ``info.json`` needs it."""

    name: str
    split: str
    num_samples: int
    seconds: float


@dataclass
class OutState:
    """What an output folder already holds for this dataset and partition."""

    records: list[ShardRecord] = field(default_factory=list)
    keys: set[str] = field(default_factory=set)
    sample_rates: set[int] = field(default_factory=set)
    next_index: dict[str, int] = field(default_factory=dict)


def scan_out(out: Path, dataset: str, partition: int | None) -> OutState:
    """Read the complete shards of this dataset and partition; delete their stale ``.tmp`` files."""
    state = OutState()
    for path in sorted(out.glob(f"{dataset}-*.tar*")):
        is_tmp = path.name.endswith(".tar.tmp")
        parsed = parse_shard_name(path.name.removesuffix(".tmp"), dataset)
        if parsed is None:
            continue
        if (parsed.partition is None) != (partition is None):
            raise UsageError(f"{out} mixes partitioned and unpartitioned shards ({path.name})")
        if parsed.partition != partition:
            continue
        if is_tmp:
            path.unlink()  # an interrupted shard: its samples are not in `keys`, so they get redone
            continue
        index = max(state.next_index.get(parsed.split, 0), parsed.index + 1)
        state.next_index[parsed.split] = index
        try:
            metas = read_shard_meta(path)
        except ValueError as err:
            raise UsageError(f"{err}; move the broken shard away and rerun") from err
        seconds = sum(meta["duration"] for meta in metas)
        state.records.append(ShardRecord(path.name, parsed.split, len(metas), seconds))
        state.keys.update(meta["key"] for meta in metas)
        state.sample_rates.update(meta["sample_rate"] for meta in metas if "sample_rate" in meta)
    return state


def build_info(
    records: list[ShardRecord], dataset: str, sample_rate: int, task: str, vocabulary: list[str]
) -> DatasetInfo:
    """``info.json`` content from the complete shards."""
    splits = {}
    for record in sorted(records, key=lambda r: r.name):
        split = splits.setdefault(record.split, SplitInfo(0, 0.0, [], []))
        split.num_samples += record.num_samples
        split.seconds += record.seconds
        split.shards.append(record.name)
        split.shard_num_samples.append(record.num_samples)
    for split in splits.values():
        split.seconds = round(split.seconds, 3)
    return DatasetInfo(
        dataset=dataset,
        sample_rate=sample_rate,
        task=task,
        vocabulary=vocabulary,
        splits=dict(sorted(splits.items())),
        total_seconds=round(sum(split.seconds for split in splits.values()), 3),
    )


@contextmanager
def lock_out_dir(out: Path, name: str) -> Iterator[None]:
    """Hold an exclusive lock on ``out/.{name}.lock`` (the OS drops it if the process dies)."""
    with open(out / f".{name}.lock", "w") as file:
        try:
            # a POSIX record lock, unlike flock, is not inherited by the forked workers
            fcntl.lockf(file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as err:
            raise UsageError(f"another sharder is writing {name} in {out}") from err
        yield


# ---------------------------------------------------------------- commands


def write_items(items: list[Item], out: Path, args: argparse.Namespace, state: OutState) -> Counter:
    """Decode ``items`` in workers and write them in order; marks failures; returns warning counts."""
    warning_counts: Counter = Counter()
    jobs = ((item.path, args.sample_rate, args.max_seconds) for item in items)
    bar = tqdm(total=len(items), unit="track", desc="sharding", dynamic_ncols=True)
    ok = failed = 0
    with ExitStack() as stack:
        results = ordered_map(prepare, jobs, args.workers)
        stack.callback(results.close)
        writers: dict[str, ShardWriter] = {}
        for item, result in zip(items, results, strict=True):
            if isinstance(result, str):
                item.error, failed = result, failed + 1
            else:
                flac, num_samples, warnings = result
                if item.split not in writers:
                    writers[item.split] = stack.enter_context(_writer(out, args, item.split, state))
                writers[item.split].write(item.key, flac, _meta(item, num_samples, warnings, args))
                warning_counts.update(warnings)
                ok += 1
            bar.update()
            bar.set_postfix(ok=ok, failed=failed, refresh=False)
    bar.close()
    for writer in writers.values():
        for name, count, seconds in zip(
            writer.shards, writer.shard_num_samples, writer.shard_seconds, strict=True
        ):
            state.records.append(ShardRecord(name, writer.split, count, seconds))
    return warning_counts


def _writer(out: Path, args: argparse.Namespace, split: str, state: OutState) -> ShardWriter:
    return ShardWriter(
        out,
        args.dataset,
        split,
        max_bytes=int(args.max_shard_mb * 1_000_000),
        max_samples=args.max_shard_samples,
        start_index=state.next_index.get(split, 0),
        partition=args.partition,
    )


def _meta(item: Item, num_samples: int, warnings: list[str], args: argparse.Namespace) -> dict:
    meta = {
        "key": item.key,
        "track_id": item.track_id,
        "split": item.split,
        "duration": num_samples / args.sample_rate,
        "labels": item.labels,
        "source": item.source,
        "sample_rate": args.sample_rate,
    }
    if item.targets is not None:
        meta["targets"] = item.targets
    if warnings:
        meta["warnings"] = warnings
    return meta


def shard(args: argparse.Namespace) -> int:
    """The sharding command; returns the exit status."""
    out = Path(args.out)
    args.dataset = args.dataset or out.resolve().name
    try:
        check_names(args.dataset, args.split)
    except ValueError as err:
        raise UsageError(f"{err} (set --dataset)") from err
    args.partition = args.partition_index if args.num_partitions > 1 else None
    suffix = "" if args.partition is None else f".p{args.partition:03d}"
    items, vocabulary, task = collect_items(args, out)
    out.mkdir(parents=True, exist_ok=True)
    with lock_out_dir(out, f"{args.dataset}{suffix}"):
        state = scan_out(out, args.dataset, args.partition)
        if state.sample_rates - {args.sample_rate}:
            raise UsageError(
                f"{out} holds shards at {sorted(state.sample_rates)} Hz but --sample-rate is "
                f"{args.sample_rate}; use another --out"
            )
        good = list(pending(items))
        todo = [item for item in good if item.key not in state.keys]
        if len(todo) < len(good):
            print(f"resuming: {len(good) - len(todo)} inputs already in shards, skipping them")
        warning_counts = write_items(todo, out, args, state)
        info = build_info(state.records, args.dataset, args.sample_rate, task, vocabulary)
        write_info(out, info, f"info{suffix}.json")
        errors = [{"path": item.source, "reason": item.error} for item in items if item.error]
        lines = "".join(json.dumps(error, ensure_ascii=False) + "\n" for error in errors)
        atomic_write(out / f"errors{suffix}.jsonl", lines.encode())
    if warning_counts:
        print("warnings: " + " ".join(f"{k}={v}" for k, v in sorted(warning_counts.items())))
    num_shards = sum(len(split.shards) for split in info.splits.values())
    ok = len(items) - len(errors)
    print(f"ok={ok} failed={len(errors)} seconds={info.total_seconds:.1f} shards={num_shards}")
    if errors:
        print(f"failed inputs are listed in {out / f'errors{suffix}.jsonl'}", file=sys.stderr)
    return 1 if errors else 0


def merge_info(args: argparse.Namespace) -> int:
    """Combine ``info.pNNN.json`` partition files into ``info.json`` (and the error lists)."""
    out = Path(args.out)
    paths = sorted(out.glob("info.p[0-9][0-9][0-9].json"))
    if not paths:
        raise UsageError(f"no info.pNNN.json partition files in {out}")
    if args.num_partitions is not None:
        expected = {f"info.p{index:03d}.json" for index in range(args.num_partitions)}
        missing = sorted(expected - {path.name for path in paths})
        if missing:
            raise UsageError(f"missing partitions in {out}: {', '.join(missing)}")
    try:
        infos = [read_info(path) for path in paths]
    except (OSError, ValueError) as err:
        raise UsageError(str(err)) from err
    for path, info in zip(paths[1:], infos[1:], strict=True):
        for name in ("dataset", "sample_rate", "task", "vocabulary"):
            if getattr(info, name) != getattr(infos[0], name):
                raise UsageError(f"{path.name} and {paths[0].name} differ in {name}")
    merged = build_info(
        [
            ShardRecord(name, split_name, count, 0.0)
            for info in infos
            for split_name, split in info.splits.items()
            for name, count in zip(split.shards, split.shard_num_samples, strict=True)
        ],
        infos[0].dataset,
        infos[0].sample_rate,
        infos[0].task,
        infos[0].vocabulary,
    )
    for name, split in merged.splits.items():
        split.seconds = round(sum(i.splits[name].seconds for i in infos if name in i.splits), 3)
    merged.total_seconds = round(sum(split.seconds for split in merged.splits.values()), 3)
    write_info(out, merged)
    errors = b"".join(
        path.read_bytes() for path in sorted(out.glob("errors.p[0-9][0-9][0-9].jsonl"))
    )
    atomic_write(out / "errors.jsonl", errors)
    total = sum(split.num_samples for split in merged.splits.values())
    print(f"merged {len(paths)} partitions into {out / INFO_NAME}: {total} samples")
    return 0


def parse_args(argv: list[str]) -> argparse.Namespace:
    """Flags of the sharding command."""
    parser = argparse.ArgumentParser(
        prog="python -m data_prep.shard",
        description=DESCRIPTION,
        epilog=EXIT_CODES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add = parser.add_argument
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--input", metavar="DIR", help="folder of audio, searched recursively")
    source.add_argument("--manifest", metavar="FILE", help=".jsonl or .csv manifest (see above)")
    add("--out", metavar="DIR", required=True, help="output folder")
    add("--split", default="train", help="split of all --input files (default: train)")
    add("--labels-from-parent", action="store_true", help="--input: label = parent folder name")
    add("--dataset", metavar="NAME", help="shard name prefix (default: name of --out)")
    add("--sample-rate", metavar="HZ", type=int, default=16000, help="(default: 16000)")
    add("--task", choices=TASKS, help="(default: multilabel if there are labels, else none)")
    add("--vocabulary", metavar="FILE", help="one label per line (default: sorted labels seen)")
    add("--workers", metavar="N", type=int, default=min(4, os.cpu_count() or 1),
        help="decoding processes, 0: none (default: min(4, CPUs))")  # fmt: skip
    add("--max-shard-mb", metavar="MB", type=float, default=500.0, help="(default: 500)")
    add("--max-shard-samples", metavar="N", type=int, help="also bound samples per shard")
    add("--max-seconds", metavar="S", type=float, help="keep only the first S s of each track")
    add("--num-partitions", metavar="K", type=int, default=1, help="(default: 1)")
    add("--partition-index", metavar="I", type=int, default=0, help="process inputs i %% K == I")
    args = parser.parse_args(argv)
    if args.manifest is not None and (args.labels_from_parent or args.split != "train"):
        parser.error("--split and --labels-from-parent apply to --input only")
    if args.sample_rate <= 0 or args.workers < 0 or args.max_shard_mb <= 0:
        parser.error("--sample-rate and --max-shard-mb must be positive, --workers at least 0")
    if args.max_seconds is not None and args.max_seconds <= 0:
        parser.error("--max-seconds must be positive")
    if args.max_shard_samples is not None and args.max_shard_samples < 1:
        parser.error("--max-shard-samples must be at least 1")
    if not 0 <= args.partition_index < args.num_partitions:
        parser.error("--partition-index must be in [0, --num-partitions)")
    return args


def parse_merge_args(argv: list[str]) -> argparse.Namespace:
    """Flags of ``merge-info``."""
    parser = argparse.ArgumentParser(
        prog="python -m data_prep.shard merge-info",
        description="Combine the info.pNNN.json files of partition runs into info.json.",
    )
    parser.add_argument("out", help="the shared output folder")
    parser.add_argument("--num-partitions", type=int, help="fail unless all K partitions are there")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the exit status (see ``--help``)."""
    argv = sys.argv[1:] if argv is None else argv
    try:
        if argv[:1] == ["merge-info"]:
            return merge_info(parse_merge_args(argv[1:]))
        return shard(parse_args(argv))
    except UsageError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
