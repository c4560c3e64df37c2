"""What every public-dataset adapter shares: entries -> manifest + task.json + vocab.txt -> shards.

An adapter parses its dataset's own metadata into :class:`Entry` objects (one
per audio file, with split and labels or targets) and the inputs it leaves out
on purpose as :class:`Skipped` (known-broken files, labels outside the task).
:func:`run_adapter` writes them under ``--out`` and hands the manifest to the
sharder in this process::

    OUT/manifest.jsonl   one line per entry: path (absolute), split, labels | targets, key, track_id
    OUT/task.json        task type, vocabulary, description, per-split counts, adapter notes
    OUT/vocab.txt        the vocabulary, one label per line (the sharder's --vocabulary)
    OUT/skipped.jsonl    {"path", "reason"} per input left out on purpose
    OUT/info.json, OUT/errors.jsonl, OUT/*.tar   written by data_prep.shard

Exit status: the shared one (:data:`lit_mrl.errors.EXIT_CODES_HELP`): 0 all
sharded, 1 some inputs failed, 2 usage error, including missing or malformed
metadata (reported as one line, ``file:line: why``), 3 out of disk space.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from data_prep import shard
from data_prep.options import (
    EXIT_CODES_HELP,
    add_debug_flag,
    nonnegative_int,
    positive_int,
    run_main,
)
from data_prep.outdir import check_one_dataset
from lit_mrl.errors import UsageError
from lit_mrl.formats.files import atomic_write

SPLITS = ("train", "valid", "test")
MAX_PRINTED_SKIPS = 10


class MetadataError(UsageError):
    """Missing or malformed dataset metadata; the message starts with ``file:line:``.

    Args:
        path: the metadata file (or folder) at fault.
        message: what is wrong.
        line: 1-based line number, when the fault has one.
    """

    def __init__(self, path: str | Path, message: str, line: int | None = None):
        self.path, self.line = Path(path), line
        where = str(path) if line is None else f"{path}:{line}"
        super().__init__(f"{where}: {message}")


@dataclass
class Entry:
    """One audio file to shard.

    Args:
        path: the audio file.
        split: ``train``, ``valid`` or ``test``.
        key: sample key, unique within the dataset (``[A-Za-z0-9_-]+``).
        track_id: the dataset's own id for the item.
        labels: label names (multilabel / multiclass).
        targets: regression values, ordered like the vocabulary.
    """

    path: Path
    split: str
    key: str
    track_id: str
    labels: list[str] = field(default_factory=list)
    targets: list[float] | None = None


@dataclass
class Skipped:
    """An input left out on purpose, and why (written to ``skipped.jsonl``)."""

    path: str
    reason: str


@dataclass
class Prepared:
    """An adapter's result.

    Args:
        task: ``multilabel``, ``multiclass`` or ``regression``.
        vocabulary: label names in class order (regression: target names).
        entries: the files to shard.
        skipped: the inputs left out on purpose.
        description: one line for ``task.json``.
        notes: extra adapter facts for ``task.json`` (e.g. target standardisation).
    """

    task: str
    vocabulary: list[str]
    entries: list[Entry]
    skipped: list[Skipped] = field(default_factory=list)
    description: str = ""
    notes: dict[str, Any] = field(default_factory=dict)


# ---------------------------------------------------------------- helpers for parsers


def require_file(path: Path, what: str) -> Path:
    """``path`` if it is a file, else a :class:`MetadataError` naming ``what`` it should be."""
    if not path.is_file():
        raise MetadataError(path, f"missing {what}")
    return path


def read_lines(path: Path, what: str) -> list[tuple[int, str]]:
    """``(line number, stripped text)`` of the non-blank, non-``#`` lines of a text file."""
    text = require_file(path, what).read_text(encoding="utf-8-sig")
    lines = ((number, line.strip()) for number, line in enumerate(text.splitlines(), 1))
    return [(number, line) for number, line in lines if line and not line.startswith("#")]


def read_vocabulary(path: Path) -> list[str]:
    """A label list, one per line, in order; a repeated label is an error."""
    vocabulary: dict[str, int] = {}
    for line, label in read_lines(path, "label list"):
        if label in vocabulary:
            raise MetadataError(path, f"{label!r} repeats line {vocabulary[label]}", line)
        vocabulary[label] = line
    return list(vocabulary)


def stable_fraction(text: str) -> float:
    """A number in ``[0, 1)`` fixed by ``text``: deterministic splits that survive reordering."""
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "big") / 2**64


def split_counts(entries: Sequence[Entry]) -> dict[str, int]:
    """Entries per split, in ``train, valid, test`` order."""
    counts = Counter(entry.split for entry in entries)
    return {name: counts[name] for name in sorted(counts, key=_split_order)}


def _split_order(name: str) -> tuple[int, str]:
    return (SPLITS.index(name) if name in SPLITS else len(SPLITS), name)


# ---------------------------------------------------------------- output


def write_manifest(out: Path, prepared: Prepared, dataset: str) -> Path:
    """Write ``manifest.jsonl``, ``task.json``, ``vocab.txt`` and ``skipped.jsonl``; return the manifest."""
    out.mkdir(parents=True, exist_ok=True)
    lines = []
    for entry in prepared.entries:
        line: dict[str, Any] = {
            "path": str(entry.path.absolute()),
            "split": entry.split,
            "key": entry.key,
            "track_id": entry.track_id,
            "labels": entry.labels,
        }
        if entry.targets is not None:
            line["targets"] = entry.targets
        lines.append(json.dumps(line, ensure_ascii=False) + "\n")
    manifest = out / "manifest.jsonl"
    atomic_write(manifest, "".join(lines).encode())
    task = {
        "dataset": dataset,
        "task": prepared.task,
        "vocabulary": prepared.vocabulary,
        "description": prepared.description,
        "splits": split_counts(prepared.entries),
        "skipped": len(prepared.skipped),
        **prepared.notes,
    }
    atomic_write(out / "task.json", (json.dumps(task, indent=2) + "\n").encode())
    atomic_write(out / "vocab.txt", "".join(f"{label}\n" for label in prepared.vocabulary).encode())
    skipped = "".join(
        json.dumps({"path": s.path, "reason": s.reason}, ensure_ascii=False) + "\n"
        for s in prepared.skipped
    )
    atomic_write(out / "skipped.jsonl", skipped.encode())
    return manifest


def report(prepared: Prepared, out: Path) -> None:
    """Print per-split counts and the skipped inputs (grouped by reason)."""
    counts = " ".join(f"{name}={count}" for name, count in split_counts(prepared.entries).items())
    print(f"{len(prepared.entries)} tracks ({counts}), {len(prepared.vocabulary)} labels")
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
    parser = argparse.ArgumentParser(
        prog=prog,
        description=description,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=EXIT_CODES_HELP
        + "  (2 also: missing or malformed dataset metadata, as file:line: why)\n",
    )
    parser.add_argument("--root", type=Path, required=True, help="the dataset as distributed")
    parser.add_argument("--out", type=Path, required=True, help="output folder for the shards")
    parser.add_argument("--dataset", help="shard name prefix (default: name of --out)")
    parser.add_argument("--sample-rate", type=positive_int, default=16000, help="(default: 16000)")
    parser.add_argument(
        "--workers",
        type=nonnegative_int,
        default=min(4, os.cpu_count() or 1),
        help="decoding processes, 0: none (default: min(4, CPUs))",
    )
    parser.add_argument(
        "--manifest-only", action="store_true", help="write the manifest and task.json, no shards"
    )
    parser.add_argument(
        "--overwrite",
        action="store_true",
        help="delete this dataset's shards, info and errors in --out first (see data_prep.shard)",
    )
    add_debug_flag(parser)
    return parser


def run_adapter(
    parser: argparse.ArgumentParser,
    prepare: Callable[[argparse.Namespace], Prepared],
    argv: Sequence[str] | None,
) -> int:
    """Parse ``argv``, run ``prepare``, write the manifest and shard it; return the exit status.

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
    if not prepared.entries:
        raise MetadataError(args.root, "no tracks found: check --root and the split files")
    manifest = write_manifest(args.out, prepared, dataset)
    report(prepared, args.out)
    if args.manifest_only:
        print(f"manifest in {manifest}")
        return 0
    shard_args = [
        "--manifest", str(manifest),
        "--out", str(args.out),
        "--dataset", dataset,
        "--task", prepared.task,
        "--vocabulary", str(args.out / "vocab.txt"),
        "--sample-rate", str(args.sample_rate),
        "--workers", str(args.workers),
    ]  # fmt: skip
    return shard.shard(shard.parse_args(shard_args + ["--overwrite"] * args.overwrite))
