"""The sharder's inputs: list a folder or read a manifest, check every entry, fix the order.

Each input becomes an :class:`Item`; a problem with one input sets its
``error`` (the sharder lists it in ``errors.jsonl``), a problem with the whole
run (a bad manifest line, two files with one key) raises :class:`UsageError`.
"""

from __future__ import annotations

import argparse
import csv
import difflib
import hashlib
import json
import math
import os
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lit_mrl.errors import UsageError
from lit_mrl.formats.containers import worth_decoding
from lit_mrl.formats.shards import sanitize_key

__all__ = ["Item", "UsageError", "collect_items", "pending"]

# the fields a manifest row may have; anything else is a mistake worth stopping for
MANIFEST_FIELDS = ("path", "split", "labels", "targets", "key", "track_id", "meta")


@dataclass
class Item:
    """One input: a track to shard, or a reason it cannot be.

    Args:
        source: the path as given (folder walk or manifest).
        origin: where it was listed, for messages (``manifest.jsonl:12`` or the path).
        path: the file to read.
        key: sample key.
        track_id: track id (defaults to the key).
        split: split name.
        labels: label names.
        targets: regression values, ordered like the vocabulary.
        meta: the row's ``meta`` object, kept verbatim in the sample's json (never read).
        error: why it is not sharded, or None.
        size: file size in bytes, once :func:`check_files` found the file.
        mtime_ns: file modification time in nanoseconds, likewise.
    """

    source: str
    origin: str
    path: Path
    key: str = ""
    track_id: str = ""
    split: str = "train"
    labels: list[str] = field(default_factory=list)
    targets: list[float] | None = None
    meta: dict[str, Any] | None = None
    error: str | None = None
    size: int = 0
    mtime_ns: int = 0


# ---------------------------------------------------------------- inputs


def list_folder(
    root: Path, split: str, labels_from_parent: bool, skip: Path
) -> tuple[list[Item], list[Path]]:
    """The audio under ``root`` (recursive, ``skip`` excluded) as items, and the files skipped.

    A file is audio by its extension or, failing that, its first bytes
    (:func:`lit_mrl.formats.containers.worth_decoding`); ``notes.txt`` or ``cover.jpg`` is
    skipped, not reported: the decoder's verdict on each listed file comes later.
    """
    items, skipped = [], []
    for folder, subfolders, files in os.walk(root):
        subfolders[:] = sorted(d for d in subfolders if Path(folder, d).resolve() != skip)
        for name in sorted(files):
            path = Path(folder, name)
            if not worth_decoding(path):
                skipped.append(path)
                continue
            relative = path.relative_to(root)
            item = Item(source=str(path), origin=str(path), path=path, split=split)
            item.key = item.track_id = _key_or_empty(relative.as_posix())
            if labels_from_parent and relative.parent == Path("."):
                item.error = "no parent folder to take a label from (--labels-from-parent)"
            elif labels_from_parent:
                item.labels = [relative.parent.name]
            items.append(item)
    return items, skipped


def _key_or_empty(text: str) -> str:
    try:
        return sanitize_key(text)
    except ValueError:
        return ""


def read_manifest(manifest: Path) -> list[Item]:
    """Items from a ``.jsonl`` or ``.csv`` manifest; paths are relative to its folder."""
    if not manifest.is_file():
        raise UsageError(f"manifest {manifest} does not exist")
    if manifest.suffix.lower() == ".jsonl":
        rows = _jsonl_rows(manifest)
    elif manifest.suffix.lower() == ".csv":
        rows = _csv_rows(manifest)
    else:
        raise UsageError(f"manifest {manifest} must end in .jsonl or .csv")
    return [_row_to_item(row, manifest.parent, f"{manifest}:{line}") for line, row in rows]


def _jsonl_rows(manifest: Path) -> Iterator[tuple[int, dict]]:
    with open(manifest, encoding="utf-8") as file:
        for line, text in enumerate(file, 1):
            if not text.strip():
                continue
            try:
                row = json.loads(text)
            except (json.JSONDecodeError, RecursionError) as err:
                raise UsageError(f"{manifest}:{line}: invalid JSON ({err})") from err
            if not isinstance(row, dict):
                raise UsageError(f"{manifest}:{line}: expected a JSON object")
            _check_fields(row, f"{manifest}:{line}", "key")
            yield line, row


def _csv_rows(manifest: Path) -> Iterator[tuple[int, dict]]:
    with open(manifest, encoding="utf-8", newline="") as file:
        reader = csv.DictReader(file)
        if "path" not in (reader.fieldnames or []):
            raise UsageError(f"{manifest}:1: the CSV header needs a 'path' column")
        _check_fields([name for name in reader.fieldnames if name], f"{manifest}:1", "column")
        for row in reader:
            row = {name: value.strip() for name, value in row.items() if name and value}
            for name in ("labels", "targets"):
                if name in row:
                    row[name] = [part.strip() for part in row[name].split(";") if part.strip()]
            if "targets" in row:
                try:
                    row["targets"] = [float(value) for value in row["targets"]]
                except ValueError as err:
                    raise UsageError(f"{manifest}:{reader.line_num}: bad targets ({err})") from err
            if "meta" in row:  # a JSON object in the cell
                try:
                    row["meta"] = json.loads(row["meta"])
                except (json.JSONDecodeError, RecursionError) as err:
                    where = f"{manifest}:{reader.line_num}"
                    raise UsageError(f"{where}: 'meta' is not a JSON object ({err})") from err
            yield reader.line_num, row


def _check_fields(names: Iterable[str], origin: str, what: str) -> None:
    """Raise UsageError for the first name that is not a manifest field, with a near miss."""
    for name in names:
        if name not in MANIFEST_FIELDS:
            close = difflib.get_close_matches(name, MANIFEST_FIELDS, n=1, cutoff=0.6)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            known = ", ".join(MANIFEST_FIELDS)
            raise UsageError(f"{origin}: unknown {what} {name!r}{hint}; known: {known}")


def _row_to_item(row: dict[str, Any], base: Path, origin: str) -> Item:
    def field_of(name: str, kinds: type | tuple[type, ...], default: Any) -> Any:
        value = row.get(name, default)
        if not isinstance(value, kinds):
            raise UsageError(f"{origin}: {name!r} has the wrong type ({type(value).__name__})")
        return value

    source = field_of("path", str, None) if "path" in row else None
    if not source:
        raise UsageError(f"{origin}: missing 'path'")
    labels = field_of("labels", (list, str), [])
    labels = ([labels] if labels else []) if isinstance(labels, str) else labels
    targets = field_of("targets", (list, type(None)), None)
    if not all(isinstance(label, str) for label in labels):
        raise UsageError(f"{origin}: 'labels' must be a string or a list of strings")
    if targets is not None and not all(isinstance(t, (int, float)) for t in targets):
        raise UsageError(f"{origin}: 'targets' must be a list of numbers")
    meta = row.get("meta")
    if meta is not None and not isinstance(meta, dict):
        raise UsageError(f"{origin}: 'meta' must be a JSON object, got {type(meta).__name__}")
    split = field_of("split", str, "train")
    if not split.replace("_", "").isalnum() or not split.isascii():
        raise UsageError(f"{origin}: split {split!r} must match [A-Za-z0-9_]+")
    try:
        key = sanitize_key(field_of("key", str, source))
    except ValueError as err:
        raise UsageError(f"{origin}: {err}") from err
    return Item(
        source=source,
        origin=origin,
        path=base / source,  # an absolute source replaces base
        key=key,
        track_id=str(field_of("track_id", (str, int), key)),
        split=split,
        labels=list(labels),
        targets=None if targets is None else [float(t) for t in targets],
        meta=meta,
    )


# ---------------------------------------------------------------- checks


def check_files(items: list[Item]) -> None:
    """Mark items whose file is missing or has no key (the decoder judges the content)."""
    for item in pending(items):
        if not item.path.is_file():
            item.error = "file not found"
        elif not item.key:
            item.error = "cannot make a key from the path"
        else:
            stat = item.path.stat()  # the fingerprint that resume compares
            item.size, item.mtime_ns = stat.st_size, stat.st_mtime_ns


def check_duplicates(items: list[Item]) -> None:
    """Mark repeated entries of one file; raise UsageError when two files share a key."""
    first: dict[str, Item] = {}
    for item in pending(items):
        other = first.setdefault(item.key, item)
        if other is item:
            continue
        same = (other.split, other.labels, other.targets, other.meta) == (
            item.split, item.labels, item.targets, item.meta
        )  # fmt: skip
        if other.path.resolve() == item.path.resolve() and same:
            item.error = f"duplicate entry (same file and key as {other.origin})"
        else:
            raise UsageError(
                f"duplicate key {item.key!r}: {other.origin} ({other.source}) and "
                f"{item.origin} ({item.source}); give one of them a distinct 'key'"
            )


def check_labels(items: list[Item], vocabulary: list[str], task: str, source: str) -> None:
    """Mark items whose labels or targets do not fit the vocabulary and task."""
    known = set(vocabulary)
    for item in pending(items):
        unknown = [label for label in item.labels if label not in known]
        if unknown:
            item.error = f"unknown label {unknown[0]!r} (not in {source})"
        elif task == "multiclass" and len(item.labels) != 1:
            item.error = f"multiclass needs exactly one label, got {len(item.labels)}"
        elif task == "regression" and (
            item.targets is None or len(item.targets) != len(vocabulary)
        ):
            item.error = f"regression needs {len(vocabulary)} targets, got {item.targets}"
        elif item.targets is not None and not all(map(math.isfinite, item.targets)):
            item.error = "targets contain NaN or Inf"


def pending(items: Iterable[Item]) -> Iterator[Item]:
    """The items not yet marked with an error."""
    return (item for item in items if item.error is None)


def resolve_vocabulary(
    items: list[Item], vocabulary_file: str | None, task: str | None, manifest: bool = False
) -> tuple[list[str], str, str]:
    """Return ``(vocabulary, task, where the vocabulary came from)``.

    Without ``--task``: for a manifest, ``regression`` when every row has targets and
    none has labels, ``multiclass`` when every row has exactly one label (either prints a
    line saying so); otherwise ``multilabel`` when some inputs have labels, else ``none``
    (a folder with ``--labels-from-parent`` stays multilabel). Without
    ``--vocabulary``: the labels seen, sorted; for regression the targets are named
    ``target`` (one) or ``target_0``, ``target_1``, ... (the first input's count).
    """
    if task is None:
        task = infer_task(items, manifest)
    if vocabulary_file is not None:
        lines = Path(vocabulary_file).read_text(encoding="utf-8").splitlines()
        vocabulary = [line.strip() for line in lines if line.strip()]
        repeated = [name for name, count in Counter(vocabulary).items() if count > 1]
        if repeated:
            raise UsageError(f"{vocabulary_file}: label {repeated[0]!r} appears twice")
        return vocabulary, task, vocabulary_file
    if task == "regression":
        count = next((len(item.targets) for item in items if item.targets), 0)
        if count == 0:
            raise UsageError("--task regression needs inputs with 'targets' (a list of numbers)")
        names = ["target"] if count == 1 else [f"target_{i}" for i in range(count)]
        return names, task, "the targets' default names"
    return sorted({label for item in items for label in item.labels}), task, "the labels seen"


def infer_task(items: list[Item], manifest: bool) -> str:
    """The task of inputs given without ``--task`` (see :func:`resolve_vocabulary`)."""
    if manifest and items and all(item.targets and not item.labels for item in items):
        print("task: regression (every row has targets and no labels; --task to override)")
        return "regression"
    if manifest and items and all(len(item.labels) == 1 for item in items):
        print("task: multiclass (every row has exactly one label; --task multilabel to override)")
        return "multiclass"
    return "multilabel" if any(item.labels for item in items) else "none"


def _files(count: int, kind: str = "") -> str:
    return f"{count} {kind}file{'s' * (count != 1)}"


def order_key(item: Item) -> str:
    """A fixed pseudo-random order, so each shard mixes folders and labels."""
    return hashlib.sha256(item.source.encode()).hexdigest()


def collect_items(args: argparse.Namespace, out: Path) -> tuple[list[Item], list[str], str]:
    """This partition's inputs, checked, in processing order; and the vocabulary and task."""
    if args.input is not None:
        root = Path(args.input)
        if not root.is_dir():
            raise UsageError(f"--input {root} is not a folder")
        items, skipped = list_folder(root, args.split, args.labels_from_parent, out.resolve())
        if not items:
            found = _files(len(skipped), "other ") if skipped else "no files"
            raise UsageError(
                f"no audio files in --input {root} ({found}; audio is told by its extension, "
                ".wav .flac .mp3 .m4a ..., or its first bytes, recursively)"
            )
        if skipped:
            names = ", ".join(path.name for path in skipped[:3]) + ", ..." * (len(skipped) > 3)
            print(f"--input: skipped {_files(len(skipped))} that are not audio ({names})")
    else:
        items = read_manifest(Path(args.manifest))
        if not items:
            raise UsageError(f"manifest {args.manifest} lists no inputs")
    check_files(items)
    check_duplicates(items)
    vocabulary, task, where = resolve_vocabulary(
        items, args.vocabulary, args.task, manifest=args.input is None
    )
    check_labels(items, vocabulary, task, where)
    items.sort(key=order_key)
    return items[args.partition_index :: args.num_partitions], vocabulary, task
