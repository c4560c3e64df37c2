"""The command line's two kinds of input as :class:`~data_prep.core.rows.InputRow` lists.

``--input DIR``: the audio under a folder (:func:`list_folder`); ``--manifest FILE``: a
JSONL or CSV manifest (:func:`read_manifest`). A problem with the whole input (a bad
manifest line, an unknown field) raises :class:`UsageError` naming the file and line.
"""

from __future__ import annotations

import csv
import difflib
import json
import os
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from data_prep.core.rows import InputRow, key_or_empty
from lit_mrl.errors import UsageError
from lit_mrl.formats.containers import worth_decoding
from lit_mrl.formats.shards import sanitize_key

# the fields a manifest row may have; anything else is a mistake worth stopping for
MANIFEST_FIELDS = ("path", "split", "labels", "targets", "key", "track_id", "meta")


def list_folder(
    root: Path, split: str, labels_from_parent: bool, skip: Path
) -> tuple[list[InputRow], list[Path]]:
    """The audio under ``root`` (recursive, ``skip`` excluded) as rows, and the files skipped.

    A file is audio by its extension or, failing that, its first bytes
    (:func:`lit_mrl.formats.containers.worth_decoding`); ``notes.txt`` or ``cover.jpg`` is
    skipped, not reported: the decoder's verdict on each listed file comes later.
    """
    rows, skipped = [], []
    for folder, subfolders, files in os.walk(root):
        subfolders[:] = sorted(d for d in subfolders if Path(folder, d).resolve() != skip)
        for name in sorted(files):
            path = Path(folder, name)
            if not worth_decoding(path):
                skipped.append(path)
                continue
            relative = path.relative_to(root)
            key = key_or_empty(relative.as_posix())
            error = labels = None
            if not key:
                error = "cannot make a key from the path"
            elif labels_from_parent and relative.parent == Path("."):
                error = "no parent folder to take a label from (--labels_from_parent)"
            elif labels_from_parent:
                labels = [relative.parent.name]
            rows.append(
                InputRow(path, split, key, key, labels or [], error=error, origin=str(path))
            )
    return rows, skipped


def read_manifest(manifest: Path) -> list[InputRow]:
    """Rows of a ``.jsonl`` or ``.csv`` manifest; paths are relative to its folder."""
    if not manifest.is_file():
        raise UsageError(f"manifest {manifest} does not exist")
    if manifest.suffix.lower() == ".jsonl":
        rows = _jsonl_rows(manifest)
    elif manifest.suffix.lower() == ".csv":
        rows = _csv_rows(manifest)
    else:
        raise UsageError(f"manifest {manifest} must end in .jsonl or .csv")
    return [_to_row(row, manifest.parent, f"{manifest}:{line}") for line, row in rows]


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


def _to_row(row: dict[str, Any], base: Path, origin: str) -> InputRow:
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
    return InputRow(
        path=base / source,  # an absolute source replaces base
        split=split,
        key=key,
        track_id=str(field_of("track_id", (str, int), key)),
        labels=list(labels),
        targets=None if targets is None else [float(t) for t in targets],
        meta=meta,
        source=source,
        origin=origin,
    )
