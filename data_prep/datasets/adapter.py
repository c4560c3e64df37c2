"""What every public-dataset adapter shares: rows -> manifest + task.json + vocab.txt -> shards.

An adapter parses its dataset's own metadata into
:class:`~data_prep.core.rows.InputRow` objects (one per track, with split and labels or
targets), the inputs it leaves out on purpose as :class:`Skipped` (known-broken files,
labels outside the task) and, where a dataset is fetched piecemeal (AudioSet), the
listed tracks it could not find as :class:`Missing`. :func:`run_adapter` writes them
under ``--out`` and hands the rows and a :class:`~data_prep.core.options.ShardOptions`
to the sharder in this process::

    OUT/manifest.jsonl   one line per row: path (absolute), split, labels | targets, key, track_id
    OUT/task.json        task type, vocabulary, description, per-split counts, adapter notes
    OUT/vocab.txt        the vocabulary, one label per line
    OUT/skipped.jsonl    {"path", "reason"} per input left out on purpose
    OUT/missing.csv      track_id,split,looked_for per listed track not found (some adapters)
    OUT/info.json, OUT/errors.jsonl, OUT/*.tar   written by the sharder

Exit status: the shared one (:data:`lit_mrl.errors.EXIT_CODES_HELP`): 0 all
sharded, 1 some inputs failed, 2 usage error, including missing or malformed
metadata (reported as one line, ``file:line: why``), 3 out of disk space.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from data_prep.core.flags import (
    EXIT_CODES_HELP,
    FlagParser,
    add_debug_flag,
    default_workers,
    nonnegative_int,
    positive_float,
    positive_int,
    run_main,
)
from data_prep.core.options import ShardOptions
from data_prep.core.outdir import check_one_dataset
from data_prep.core.rows import InputRow
from data_prep.core.sharder import shard_rows
from data_prep.datasets.metadata import SPLITS, MetadataError
from lit_mrl.formats.files import atomic_write

MAX_PRINTED_SKIPS = 10


@dataclass
class Skipped:
    """An input left out on purpose, and why (written to ``skipped.jsonl``)."""

    path: str
    reason: str


@dataclass
class Missing:
    """A track the metadata lists whose audio is not there (written to ``missing.csv``).

    Args:
        track_id: the dataset's id of it.
        split: the split it would be in.
        looked_for: what was looked for, e.g. ``audio/<YTID>[_<start>[_<end>]].*``.
    """

    track_id: str
    split: str
    looked_for: str


@dataclass
class Prepared:
    """An adapter's result.

    Args:
        task: ``multilabel``, ``multiclass``, ``regression`` or ``none``.
        vocabulary: label names in class order (regression: target names).
        rows: the tracks to shard.
        skipped: the inputs left out on purpose.
        missing: listed tracks whose audio was not found, or None when the adapter
            leaves that to the sharder (``file not found`` in ``errors.jsonl``).
        description: one line for ``task.json``.
        notes: extra adapter facts for ``task.json`` (e.g. target standardisation).
    """

    task: str
    vocabulary: list[str]
    rows: list[InputRow]
    skipped: list[Skipped] = field(default_factory=list)
    missing: list[Missing] | None = None
    description: str = ""
    notes: dict[str, Any] = field(default_factory=dict)


def split_counts(rows: Sequence[InputRow]) -> dict[str, int]:
    """Rows per split, in ``train, valid, test`` order."""
    counts = Counter(row.split for row in rows)
    return {name: counts[name] for name in sorted(counts, key=_split_order)}


def _split_order(name: str) -> tuple[int, str]:
    return (SPLITS.index(name) if name in SPLITS else len(SPLITS), name)


# ---------------------------------------------------------------- output


def write_manifest(out: Path, prepared: Prepared, dataset: str) -> Path:
    """Write ``manifest.jsonl``, ``task.json``, ``vocab.txt``, ``skipped.jsonl`` (and ``missing.csv``)."""
    out.mkdir(parents=True, exist_ok=True)
    lines = []
    for row in prepared.rows:
        line: dict[str, Any] = {
            "path": str(row.path),
            "split": row.split,
            "key": row.key,
            "track_id": row.track_id,
            "labels": row.labels,
        }
        if row.targets is not None:
            line["targets"] = row.targets
        if row.meta is not None:
            line["meta"] = row.meta
        if row.member is not None:  # for reading: the sharder's --manifest has no members
            line["member"] = row.member.name
        lines.append(json.dumps(line, ensure_ascii=False) + "\n")
    manifest = out / "manifest.jsonl"
    atomic_write(manifest, "".join(lines).encode())
    task = {
        "dataset": dataset,
        "task": prepared.task,
        "vocabulary": prepared.vocabulary,
        "description": prepared.description,
        "splits": split_counts(prepared.rows),
        "skipped": len(prepared.skipped),
        **({} if prepared.missing is None else {"missing": len(prepared.missing)}),
        **prepared.notes,
    }
    atomic_write(out / "task.json", (json.dumps(task, indent=2) + "\n").encode())
    atomic_write(out / "vocab.txt", "".join(f"{label}\n" for label in prepared.vocabulary).encode())
    skipped = "".join(
        json.dumps({"path": s.path, "reason": s.reason}, ensure_ascii=False) + "\n"
        for s in prepared.skipped
    )
    atomic_write(out / "skipped.jsonl", skipped.encode())
    if prepared.missing is not None:
        text = io.StringIO()
        writer = csv.writer(text, lineterminator="\n")
        writer.writerow(["track_id", "split", "looked_for"])
        writer.writerows((m.track_id, m.split, m.looked_for) for m in prepared.missing)
        atomic_write(out / "missing.csv", text.getvalue().encode())
    return manifest


def report(prepared: Prepared, out: Path) -> None:
    """Print per-split counts, the missing count and the skipped inputs (grouped by reason)."""
    counts = " ".join(f"{name}={count}" for name, count in split_counts(prepared.rows).items())
    print(f"{len(prepared.rows)} tracks ({counts}), {len(prepared.vocabulary)} labels")
    if prepared.missing:
        listed = len(prepared.missing) + len(prepared.rows)
        print(
            f"missing: {len(prepared.missing)} of {listed} listed tracks have no audio file "
            f"(all listed in {out / 'missing.csv'})"
        )
    if not prepared.skipped:
        return
    print(f"skipped {len(prepared.skipped)} inputs (all listed in {out / 'skipped.jsonl'}):")
    for item in prepared.skipped[:MAX_PRINTED_SKIPS]:
        print(f"  {item.path}: {item.reason}")
    if len(prepared.skipped) > MAX_PRINTED_SKIPS:
        reasons = Counter(item.reason.split(" (")[0] for item in prepared.skipped)
        for reason, count in reasons.most_common():
            print(f"  {count} x {reason}")


# ---------------------------------------------------------------- CLI


def make_parser(prog: str, description: str) -> argparse.ArgumentParser:
    """A parser with the flags every adapter takes; ``description`` is the module docstring."""
    parser = FlagParser(
        prog=prog,
        description=description,
        epilog=EXIT_CODES_HELP
        + "  (2 also: missing or malformed dataset metadata, as file:line: why)\n\n"
        + "The kebab-case flags of earlier releases (--sample-rate, ...) still work for\n"
        + "this release, with a note; they will be removed.\n",
    )
    add = parser.add_argument
    add("--root", type=Path, required=True, help="the dataset as distributed")
    add("--out", type=Path, required=True, help="output folder for the shards")
    add("--dataset", help="shard name prefix (default: name of --out)")
    add("--sample_rate", type=positive_int, default=16000, help="(default: 16000)")
    add("--workers", type=nonnegative_int, default=default_workers(),
        help="decoding processes, 0: none (default: min(4, CPUs))")  # fmt: skip
    add("--max_seconds", type=positive_float, help="keep only the first S seconds of each track")
    add("--manifest_only", action="store_true",
        help="write the manifest and task.json, no shards")  # fmt: skip
    add("--overwrite", action="store_true",
        help="delete this dataset's shards, info and errors in --out first (see data_prep.shard)")  # fmt: skip
    add_debug_flag(parser)
    return parser


def run_adapter(
    parser: argparse.ArgumentParser,
    prepare: Callable[[argparse.Namespace], Prepared],
    argv: Sequence[str] | None,
) -> int:
    """Parse ``argv``, run ``prepare``, write the manifest and shard the rows; return the exit status.

    Errors in the metadata or the inputs are one line on stderr (see
    :func:`lit_mrl.errors.run_command`).
    """
    return run_main(
        lambda: parser.parse_args(argv), lambda args: _adapt(args, prepare), parser.prog
    )


def _adapt(args: argparse.Namespace, prepare: Callable[[argparse.Namespace], Prepared]) -> int:
    dataset = args.dataset or args.out.resolve().name
    if args.out.is_dir():  # before the manifest files of another dataset are overwritten
        check_one_dataset(args.out, dataset)
    prepared = prepare(args)
    if not prepared.rows:
        raise MetadataError(args.root, "no tracks found: check --root and the split files")
    # absolute paths: what the manifest records and the sharder fingerprints
    prepared.rows = [replace(row, path=row.path.absolute()) for row in prepared.rows]
    manifest = write_manifest(args.out, prepared, dataset)
    report(prepared, args.out)
    if args.manifest_only:
        print(f"manifest in {manifest}")
        return 0
    options = ShardOptions(
        out=args.out,
        dataset=dataset,
        sample_rate=args.sample_rate,
        task=prepared.task,
        vocabulary=tuple(prepared.vocabulary),
        vocabulary_source=str(args.out / "vocab.txt"),
        workers=args.workers,
        max_seconds=args.max_seconds,
        overwrite=args.overwrite,
    )
    return shard_rows(prepared.rows, options, origin=str(manifest))
