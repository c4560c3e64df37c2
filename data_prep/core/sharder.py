"""The sharder: input rows + :class:`ShardOptions` -> WebDataset tars, ``info.json``, ``errors.jsonl``.

Workers decode, downmix, resample (once, soxr) and FLAC-encode
(:mod:`data_prep.core.workers`, through :mod:`lit_mrl.formats.audio`); the main process
writes samples in a fixed order, so reruns are reproducible. A rerun after a crash
skips inputs whose keys are already in complete shards, after checking that their
inputs did not change (:mod:`data_prep.core.fingerprint`); the output folder's state is
:mod:`data_prep.core.outdir`. The command line is :mod:`data_prep.shard`; the dataset
adapters call :func:`shard_rows` directly.
"""

from __future__ import annotations

import json
import sys
from collections import Counter
from collections.abc import Sequence
from contextlib import ExitStack
from dataclasses import replace
from pathlib import Path

from tqdm import tqdm

from data_prep.core.fingerprint import FINGERPRINT, check_unchanged, fingerprint
from data_prep.core.inputs import check_items, pending
from data_prep.core.options import ShardOptions
from data_prep.core.outdir import (
    OutState,
    ShardRecord,
    build_info,
    check_one_dataset,
    clear_dataset,
    remove_partial_shards,
    scan_out,
    suffix_of,
)
from data_prep.core.rows import InputRow, Item
from data_prep.core.workers import ordered_map, prepare
from lit_mrl.errors import UsageError
from lit_mrl.formats.files import atomic_write, lock_dir
from lit_mrl.formats.info import INFO_NAME, read_info, write_info
from lit_mrl.formats.shard_writer import ShardWriter
from lit_mrl.formats.shards import check_names


def shard_rows(rows: Sequence[InputRow], options: ShardOptions, origin: str = "row") -> int:
    """Shard ``rows`` into ``options.out``; returns the exit status (0, or 1 if some failed).

    Args:
        rows: every input of the dataset (a partition run takes its share itself).
        options: the run's settings.
        origin: names rows that carry no ``origin``: ``{origin}:{index}``, 1-based.

    Raises:
        UsageError: bad names, two files with one key, ``out`` holding another dataset
            or shards that no longer match the inputs, another sharder writing there.
    """
    options = replace(options, dataset=options.dataset_name)
    out, dataset, partition = options.out, options.dataset, options.partition
    for split in sorted({row.split for row in rows}) or ["train"]:
        try:
            check_names(dataset, split)
        except ValueError as err:
            raise UsageError(f"{err} (set --dataset)") from err
    suffix = suffix_of(partition)
    items, vocabulary, task = check_items(rows, options, origin)
    out.mkdir(parents=True, exist_ok=True)
    with lock_dir(out, f"{dataset}{suffix}", f"another sharder of {dataset!r}"):
        state = open_out(items, options)
        good = list(pending(items))
        todo = [item for item in good if item.key not in state.sharded]
        if len(todo) < len(good):
            print(f"resuming: {len(good) - len(todo)} inputs already in shards, skipping them")
        try:
            warning_counts = write_items(todo, options, state)
        except BaseException:
            # a full disk can stop ShardWriter.abort itself; leave no partial shard behind
            remove_partial_shards(out, dataset, partition)
            raise
        info = build_info(state.records, dataset, options.sample_rate, task, vocabulary)
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


def write_items(items: list[Item], options: ShardOptions, state: OutState) -> Counter:
    """Decode ``items`` in workers and write them in order; marks failures; returns warning counts."""
    warning_counts: Counter = Counter()
    jobs = ((item.path, item.member, options.sample_rate, options.max_seconds) for item in items)
    ok = failed = 0
    with ExitStack() as stack:
        # closed last, also on an error, so an error line starts on a line of its own
        bar = stack.enter_context(
            tqdm(total=len(items), unit="track", desc="sharding", dynamic_ncols=True)
        )
        results = ordered_map(prepare, jobs, options.workers)
        stack.callback(results.close)
        writers: dict[str, ShardWriter] = {}
        for item, result in zip(items, results, strict=True):
            if isinstance(result, str):
                item.error, failed = result, failed + 1
            else:
                flac, num_samples, warnings = result
                if item.split not in writers:
                    writer = _writer(options, item.split, state)
                    writers[item.split] = stack.enter_context(writer)
                writers[item.split].write(
                    item.key, flac, _meta(item, num_samples, warnings, options)
                )
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


def _writer(options: ShardOptions, split: str, state: OutState) -> ShardWriter:
    return ShardWriter(
        options.out,
        options.dataset_name,
        split,
        max_bytes=int(options.max_shard_mb * 1_000_000),
        max_samples=options.max_shard_samples,
        start_index=state.next_index.get(split, 0),
        partition=options.partition,
    )


def _meta(item: Item, num_samples: int, warnings: list[str], options: ShardOptions) -> dict:
    meta = {
        "key": item.key,
        "track_id": item.track_id,
        "split": item.split,
        "duration": num_samples / options.sample_rate,
        "labels": item.labels,
        "source": item.source,
        "sample_rate": options.sample_rate,
        FINGERPRINT: fingerprint(item, options.max_seconds),
    }
    if item.targets is not None:
        meta["targets"] = item.targets
    if item.meta is not None:  # the manifest's own fields, verbatim, never interpreted
        meta["meta"] = item.meta
    if warnings:
        meta["warnings"] = warnings
    return meta


def open_out(items: list[Item], options: ShardOptions) -> OutState:
    """Check (and with ``overwrite`` clear) what ``out`` holds; its state for resuming.

    Raises:
        UsageError: ``out`` holds another dataset, or samples at another sample rate or
            made from inputs that changed since.
    """
    out, dataset, partition = options.out, options.dataset_name, options.partition
    check_one_dataset(out, dataset)
    if options.overwrite:
        deleted = clear_dataset(out, dataset, partition)
        if deleted:
            print(f"--overwrite: deleted {deleted} shard(s) of {dataset!r} in {out}")
    state = scan_out(out, dataset, partition)
    if state.sample_rates - {options.sample_rate}:
        raise UsageError(
            f"{out} holds shards at {sorted(state.sample_rates)} Hz but --sample_rate is "
            f"{options.sample_rate}; use another --out, or --overwrite to shard from scratch"
        )
    check_unchanged(items, state.sharded, options.max_seconds, f"{dataset!r} in {out}")
    return state


def merge_info(out: Path, num_partitions: int | None = None) -> int:
    """Combine ``info.pNNN.json`` partition files into ``info.json`` (and the error lists)."""
    paths = sorted(out.glob("info.p[0-9][0-9][0-9].json"))
    if not paths:
        raise UsageError(f"no info.pNNN.json partition files in {out}")
    if num_partitions is not None:
        expected = {f"info.p{index:03d}.json" for index in range(num_partitions)}
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
