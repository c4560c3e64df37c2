"""Shard a folder or manifest of audio into WebDataset tars: ``python -m data_prep.shard --help``.

Workers decode, downmix, resample (once, soxr) and FLAC-encode (:mod:`data_prep.workers`,
through :mod:`lit_mrl.formats.audio`); the main process writes samples in a fixed order,
so reruns are reproducible. A rerun after a crash skips inputs whose keys are already
in complete shards, after checking that their inputs did not change
(:mod:`data_prep.fingerprint`); the output folder's state is :mod:`data_prep.outdir`.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections import Counter
from contextlib import ExitStack
from pathlib import Path

from tqdm import tqdm

from data_prep.fingerprint import FINGERPRINT, check_unchanged, fingerprint
from data_prep.inputs import Item, UsageError, collect_items, pending
from data_prep.options import (
    EXIT_CODES_HELP,
    add_debug_flag,
    nonnegative_int,
    positive_float,
    positive_int,
    run_main,
)
from data_prep.outdir import (
    OutState,
    ShardRecord,
    build_info,
    check_one_dataset,
    clear_dataset,
    remove_partial_shards,
    scan_out,
    suffix_of,
)
from data_prep.workers import ordered_map, prepare
from lit_mrl.formats.files import atomic_write, lock_dir
from lit_mrl.formats.info import INFO_NAME, TASKS, read_info, write_info
from lit_mrl.formats.shard_writer import ShardWriter
from lit_mrl.formats.shards import check_names

PROG = "python -m data_prep.shard"
DESCRIPTION = """\
Decode, downmix, resample and FLAC-encode audio into WebDataset shards, with
info.json and errors.jsonl ({"path", "reason"} per failed input) in --out.
Rerun the same command after a crash or a full disk to resume; if inputs that
are already sharded changed since, the run stops: rerun with --overwrite.

manifest .jsonl: one object per line: path (required; relative to the
  manifest's folder or absolute), split (default train), labels (list or
  string), targets (list of numbers), key, track_id; any other key is an error
manifest .csv: header with path, split, labels (';'-separated), targets, key,
  track_id; any other column is an error

partitions: run with --num-partitions K --partition-index I for each I, then
  python -m data_prep.shard merge-info OUT [--num-partitions K]
"""


# ---------------------------------------------------------------- writing


def write_items(items: list[Item], out: Path, args: argparse.Namespace, state: OutState) -> Counter:
    """Decode ``items`` in workers and write them in order; marks failures; returns warning counts."""
    warning_counts: Counter = Counter()
    jobs = ((item.path, args.sample_rate, args.max_seconds) for item in items)
    ok = failed = 0
    with ExitStack() as stack:
        # closed last, also on an error, so an error line starts on a line of its own
        bar = stack.enter_context(
            tqdm(total=len(items), unit="track", desc="sharding", dynamic_ncols=True)
        )
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
        FINGERPRINT: fingerprint(item, args.max_seconds),
    }
    if item.targets is not None:
        meta["targets"] = item.targets
    if item.meta is not None:  # the manifest's own fields, verbatim, never interpreted
        meta["meta"] = item.meta
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
    suffix = suffix_of(args.partition)
    items, vocabulary, task = collect_items(args, out)
    out.mkdir(parents=True, exist_ok=True)
    with lock_dir(out, f"{args.dataset}{suffix}", f"another sharder of {args.dataset!r}"):
        state = open_out(out, args, items)
        good = list(pending(items))
        todo = [item for item in good if item.key not in state.sharded]
        if len(todo) < len(good):
            print(f"resuming: {len(good) - len(todo)} inputs already in shards, skipping them")
        try:
            warning_counts = write_items(todo, out, args, state)
        except BaseException:
            # a full disk can stop ShardWriter.abort itself; leave no partial shard behind
            remove_partial_shards(out, args.dataset, args.partition)
            raise
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


def open_out(out: Path, args: argparse.Namespace, items: list[Item]) -> OutState:
    """Check (and with ``--overwrite`` clear) what ``out`` holds; its state for resuming.

    Raises:
        UsageError: ``out`` holds another dataset, or samples at another sample rate or
            made from inputs that changed since.
    """
    check_one_dataset(out, args.dataset)
    if args.overwrite:
        deleted = clear_dataset(out, args.dataset, args.partition)
        if deleted:
            print(f"--overwrite: deleted {deleted} shard(s) of {args.dataset!r} in {out}")
    state = scan_out(out, args.dataset, args.partition)
    if state.sample_rates - {args.sample_rate}:
        raise UsageError(
            f"{out} holds shards at {sorted(state.sample_rates)} Hz but --sample-rate is "
            f"{args.sample_rate}; use another --out, or --overwrite to shard from scratch"
        )
    check_unchanged(items, state.sharded, args.max_seconds, f"{args.dataset!r} in {out}")
    return state


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
    infos = [read_info(path) for path in paths]
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


# ---------------------------------------------------------------- command line


def parse_args(argv: list[str]) -> argparse.Namespace:
    """Flags of the sharding command."""
    parser = argparse.ArgumentParser(
        prog=PROG,
        description=DESCRIPTION,
        epilog=EXIT_CODES_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add = parser.add_argument
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--input", metavar="DIR", help="folder of audio, searched recursively")
    source.add_argument("--manifest", metavar="FILE", help=".jsonl or .csv manifest (see above)")
    add("--out", metavar="DIR", required=True, help="output folder (one dataset per folder)")
    add("--split", default="train", help="split of all --input files (default: train)")
    add("--labels-from-parent", action="store_true", help="--input: label = parent folder name")
    add("--dataset", metavar="NAME", help="shard name prefix (default: name of --out)")
    add("--sample-rate", metavar="HZ", type=positive_int, default=16000, help="(default: 16000)")
    add("--task", choices=TASKS, help="(default: multilabel if there are labels, else none)")
    add("--vocabulary", metavar="FILE", help="one label per line (default: sorted labels seen)")
    add("--workers", metavar="N", type=nonnegative_int, default=min(4, os.cpu_count() or 1),
        help="decoding processes, 0: none (default: min(4, CPUs))")  # fmt: skip
    add("--max-shard-mb", metavar="MB", type=positive_float, default=500.0, help="(default: 500)")
    add("--max-shard-samples", metavar="N", type=positive_int, help="also bound samples per shard")
    add("--max-seconds", metavar="S", type=positive_float, help="keep the first S s of each track")
    add("--num-partitions", metavar="K", type=positive_int, default=1, help="(default: 1)")
    add("--partition-index", metavar="I", type=nonnegative_int, default=0,
        help="process inputs i %% K == I")  # fmt: skip
    add("--overwrite", action="store_true",
        help="delete this dataset's shards, info and errors in --out first, and shard from scratch")  # fmt: skip
    add_debug_flag(parser)
    args = parser.parse_args(argv)
    if args.manifest is not None and (args.labels_from_parent or args.split != "train"):
        parser.error("--split and --labels-from-parent apply to --input only")
    if args.partition_index >= args.num_partitions:
        parser.error("argument --partition-index: must be less than --num-partitions")
    return args


def parse_merge_args(argv: list[str]) -> argparse.Namespace:
    """Flags of ``merge-info``."""
    parser = argparse.ArgumentParser(
        prog=f"{PROG} merge-info",
        description="Combine the info.pNNN.json files of partition runs into info.json.",
        epilog=EXIT_CODES_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("out", help="the shared output folder")
    parser.add_argument(
        "--num-partitions", type=positive_int, help="fail unless all K partitions are there"
    )
    add_debug_flag(parser)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the exit status (see ``--help``)."""
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["merge-info"]:
        return run_main(lambda: parse_merge_args(argv[1:]), merge_info, f"{PROG} merge-info")
    return run_main(lambda: parse_args(argv), shard, PROG)


if __name__ == "__main__":
    sys.exit(main())
