"""The sharder's output folder: what it already holds, whose it is, and starting it over.

One ``--out`` holds one dataset: its shards (``{dataset}-{split}-[pNNN-]{index}.tar``),
``info[.pNNN].json`` and ``errors[.pNNN].jsonl``. Complete shards are the journal of
a run; ``.tar.tmp`` files are shards a crash or a full disk interrupted.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from data_prep.core.fingerprint import compared_fields
from lit_mrl.errors import UsageError
from lit_mrl.formats.files import fsync_dir
from lit_mrl.formats.info import INFO_NAME, DatasetInfo, SplitInfo
from lit_mrl.formats.shards import parse_shard_name, read_shard_meta

# any dataset's shard name; the dataset part is greedy, as names may hold '-'
_ANY_SHARD = re.compile(r"(?P<dataset>.+)-[A-Za-z0-9_]+-(?:p\d{3}-)?\d{6}\.tar")
_INFO_FILE = re.compile(r"info(\.p\d{3})?\.json")


@dataclass
class ShardRecord:
    """One complete shard, as ``info.json`` needs it."""

    name: str
    split: str
    num_samples: int
    seconds: float


@dataclass
class OutState:
    """What an output folder already holds for this dataset and partition.

    Args:
        records: the complete shards.
        sharded: key -> the fields resume compares (see :mod:`data_prep.core.fingerprint`).
        sample_rates: sample rates found in the samples' metadata, in Hz.
        next_index: split -> index of the next shard to write.
    """

    records: list[ShardRecord] = field(default_factory=list)
    sharded: dict[str, dict[str, Any]] = field(default_factory=dict)
    sample_rates: set[int] = field(default_factory=set)
    next_index: dict[str, int] = field(default_factory=dict)


def suffix_of(partition: int | None) -> str:
    """``""`` or ``".pNNN"``: what tells a partition's info and error files apart."""
    return "" if partition is None else f".p{partition:03d}"


def check_one_dataset(out: Path, dataset: str) -> None:
    """Refuse an ``out`` that holds shards or an info file of another dataset.

    Raises:
        UsageError: naming both datasets and the file that shows the other.
    """
    for path in sorted(out.iterdir()):
        if path.name.endswith(".tar") and parse_shard_name(path.name, dataset) is None:
            match = _ANY_SHARD.fullmatch(path.name)
            other = f"dataset {match['dataset']!r}" if match else "a tar that is no shard"
        elif _INFO_FILE.fullmatch(path.name) and _info_dataset(path) not in (None, dataset):
            other = f"dataset {_info_dataset(path)!r}"
        else:
            continue
        raise UsageError(
            f"{out} holds {other} ({path.name}), not {dataset!r}: one dataset per folder; "
            "use another --out"
        )


def _info_dataset(path: Path) -> str | None:
    # loosely: a broken info file is rewritten at the end of the run anyway
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    name = data.get("dataset") if isinstance(data, dict) else None
    return name if isinstance(name, str) else None


def own_shards(out: Path, dataset: str, partition: int | None) -> list[Path]:
    """This dataset's and partition's shards in ``out``, complete and ``.tmp`` alike."""
    paths = []
    for path in sorted(out.glob(f"{dataset}-*.tar*")):
        parsed = parse_shard_name(path.name.removesuffix(".tmp"), dataset)
        if parsed is not None and parsed.partition == partition:
            paths.append(path)
    return paths


def remove_partial_shards(out: Path, dataset: str, partition: int | None) -> None:
    """Delete this partition's ``.tar.tmp`` files (after a crash or a full disk)."""
    for path in own_shards(out, dataset, partition):
        if path.name.endswith(".tmp"):
            path.unlink(missing_ok=True)


def clear_dataset(out: Path, dataset: str, partition: int | None) -> int:
    """``--overwrite``: delete this partition's shards, info and errors; returns the shard count.

    A partition run also deletes the merged ``info.json`` and ``errors.jsonl``, which
    no longer match; ``merge-info`` writes them again.
    """
    shards = own_shards(out, dataset, partition)
    names = {f"info{suffix_of(partition)}.json", f"errors{suffix_of(partition)}.jsonl"}
    names |= {INFO_NAME, "errors.jsonl"}
    for path in [*shards, *(out / name for name in sorted(names))]:
        path.unlink(missing_ok=True)
    fsync_dir(out)
    return sum(not path.name.endswith(".tmp") for path in shards)


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
            path.unlink()  # an interrupted shard: its samples are not in `sharded`, so they get redone
            continue
        index = max(state.next_index.get(parsed.split, 0), parsed.index + 1)
        state.next_index[parsed.split] = index
        try:
            metas = read_shard_meta(path)
        except ValueError as err:
            raise UsageError(f"{err}; move the broken shard away and rerun") from err
        seconds = sum(meta["duration"] for meta in metas)
        state.records.append(ShardRecord(path.name, parsed.split, len(metas), seconds))
        state.sharded.update((meta["key"], compared_fields(meta)) for meta in metas)
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
