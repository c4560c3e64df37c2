"""On-disk format of extracted embeddings, defined in one place.

A folder per (embedding model, dataset)::

    embeddings/gtzan/
        index.json              # embed_dim, task, vocabulary, windowing, fingerprint, and
                                # every part of every split with its counts and digests
        train-000000.npz        # keys, track embeddings, labels, timeline, timestamps
        train-000001.npz
        train-r001-000000.npz   # parts written by rank 1 of a multi-process run
        test-000000.npz

Each part is an ``.npz`` of plain arrays (no pickled objects; read with
``allow_pickle=False``), written to a temporary name and renamed, so an interrupted
extraction resumes from the parts that exist. Arrays of a part:

- ``keys`` ``(N,)`` str, ``embeddings`` ``(N, D)`` float32 (track means), ``labels``
  (``(N, K)`` multi-hot or values, ``(N,)`` class indices, ``(N, 0)`` without labels);
- ``timeline`` ``(W, D)`` float32 window embeddings of the part's tracks, concatenated,
  ``offsets`` ``(N + 1,)`` int64 first row of each track, ``timestamps`` ``(W,)``
  window centres in seconds.

Only the parts ``index.json`` lists are read (:mod:`lit_mrl.formats.embedding_index`): a
part on disk it does not list is ignored with a warning naming it; a listed part that is
missing, whose arrays differ from their digests or whose arrays disagree in length is an
error naming it; so are embeddings that are not ``(N, D)`` or not finite, and labels that
do not fit the task. Readers load only the arrays they need (and check only those):
track embeddings and labels are about ``N x D``, while the timelines of long tracks are
many times larger.
"""

from __future__ import annotations

import hashlib
import warnings
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from lit_mrl.formats.embedding_checks import check_lengths, check_values
from lit_mrl.formats.embedding_index import (
    FORMAT_VERSION,
    INDEX_NAME,
    PART_ARRAYS,
    TIMELINE_ARRAYS,
    TRACK_ARRAYS,
    EmbeddingIndex,
    PartEntry,
    SplitEntry,
    append_journal,
    part_name,
    part_pattern,
    read_index,
    read_journals,
    record_parts,
    write_index,
)
from lit_mrl.formats.files import atomic_file

__all__ = [
    "FORMAT_VERSION", "INDEX_NAME", "EmbeddingIndex", "EmbeddingSet", "PartEntry", "PartWriter",
    "SplitEntry", "append_part", "existing_parts", "iter_timelines", "load_split", "part_name",
    "read_index", "read_part", "record_parts", "write_index", "write_part",
]  # fmt: skip


@dataclass
class EmbeddingSet:
    """Track embeddings of one split.

    Args:
        keys: ``N`` sample keys.
        embeddings: ``(N, D)`` float32 track embeddings (mean of the timeline).
        labels: training targets as :func:`lit_mrl.data.labels.encode_labels`
            makes them: ``(N, K)`` multi-hot or values, ``(N,)`` class indices, or ``(N, 0)``.
        timeline: ``(W, D)`` float32 window embeddings of all tracks, concatenated
            (``None`` unless asked for).
        offsets: ``(N + 1,)`` rows of ``timeline`` where each track starts.
        timestamps: ``(W,)`` window centres in seconds from the track start.
    """

    keys: list[str]
    embeddings: np.ndarray
    labels: np.ndarray
    timeline: np.ndarray | None = None
    offsets: np.ndarray | None = None
    timestamps: np.ndarray | None = None

    def track_timeline(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        """``(T_i, D)`` window embeddings and ``(T_i,)`` timestamps of track ``index``."""
        if self.timeline is None or self.offsets is None or self.timestamps is None:
            raise ValueError("this EmbeddingSet was loaded without its timeline")
        lo, hi = self.offsets[index], self.offsets[index + 1]
        return self.timeline[lo:hi], self.timestamps[lo:hi]


def existing_parts(root: str | Path, split: str) -> list[Path]:
    """Part files of ``split`` on disk, of every writer, in name order, listed or not.

    Temporary files and anything not named like a part are ignored.
    """
    pattern = part_pattern(split)
    return [p for p in sorted(Path(root).glob(f"{split}-*.npz")) if pattern.fullmatch(p.name)]


def part_writer(name: str, split: str) -> str | None:
    """The writer series of a part file name (``None`` for the plain series)."""
    match = part_pattern(split).fullmatch(name)
    return match.group(1) if match else None


def array_digest(array: np.ndarray) -> str:
    """sha256 of an array's dtype, shape and bytes (what ``np.load`` gives back)."""
    digest = hashlib.sha256(f"{array.dtype.str}{array.shape}".encode())
    digest.update(np.ascontiguousarray(array).tobytes())
    return digest.hexdigest()


def part_arrays(rows: list[dict[str, Any]]) -> dict[str, np.ndarray]:
    """The arrays of a part of ``rows`` (see :func:`write_part`)."""
    lengths = [len(r["timestamps"]) for r in rows]
    return {
        "keys": np.array([r["key"] for r in rows], dtype=str),
        "embeddings": np.stack([r["embedding"] for r in rows]).astype(np.float32),
        "labels": np.stack([np.asarray(r["label"]) for r in rows]),
        "timeline": np.concatenate([r["timeline"] for r in rows]).astype(np.float32),
        "offsets": np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64),
        "timestamps": np.concatenate([r["timestamps"] for r in rows]).astype(np.float32),
    }


def part_entry(name: str, arrays: dict[str, np.ndarray]) -> PartEntry:
    """The index entry of a part of ``arrays`` named ``name``."""
    digests = {key: array_digest(arrays[key]) for key in PART_ARRAYS}
    return PartEntry(name, len(arrays["keys"]), len(arrays["timeline"]), digests)


def _save(path: Path, arrays: dict[str, np.ndarray]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_file(path) as file:
        np.savez(file, **arrays)


def write_part(root: str | Path, name: str, rows: list[dict[str, Any]]) -> PartEntry:
    """Write one part atomically; returns its index entry (not recorded anywhere yet).

    Args:
        root: embeddings folder (created).
        name: file name, see :func:`part_name`.
        rows: one dict per track: ``key`` (str), ``embedding`` ``(D,)``, ``label``
            (array), ``timeline`` ``(T_i, D)``, ``timestamps`` ``(T_i,)``.
    """
    arrays = part_arrays(rows)
    _save(Path(root) / name, arrays)
    return part_entry(name, arrays)


def append_part(root: str | Path, split: str, rows: list[dict[str, Any]]) -> PartEntry:
    """Write ``rows`` as the next part of ``split`` and list it in ``root/index.json``.

    For one writer at a time (tests, tools); complete the index's other fields with
    :func:`write_index`, before or after.
    """
    taken = [int(p.name[-10:-4]) for p in existing_parts(root, split)
             if part_writer(p.name, split) is None]  # fmt: skip
    entry = write_part(root, part_name(split, max(taken, default=-1) + 1), rows)
    record_parts(root, split, [entry])
    return entry


def read_part(
    path: str | Path, arrays: tuple[str, ...] = TRACK_ARRAYS, entry: PartEntry | None = None
) -> dict[str, np.ndarray]:
    """The named arrays of one part (others are never read from disk), checked.

    Args:
        path: the part.
        arrays: which arrays to read.
        entry: the part's index entry: each array read must match its digest and counts.

    Raises:
        ValueError: naming the part, if it is not a readable ``.npz`` of plain arrays,
            lacks an array, its arrays disagree in length or differ from ``entry``.
    """
    try:
        with np.load(path, allow_pickle=False) as data:
            missing = [name for name in arrays if name not in data.files]
            if missing:
                raise ValueError(f"{path}: not an embeddings part (no {', '.join(missing)})")
            result = {name: data[name] for name in arrays}
    except (OSError, EOFError, ValueError, zipfile.BadZipFile) as err:
        if str(err).startswith(str(path)):
            raise
        raise ValueError(f"{path}: not a readable embeddings part ({err})") from err
    if entry is not None:
        changed = [k for k in arrays if array_digest(result[k]) != entry.digests[k]]
        if changed:
            raise ValueError(
                f"{path}: differs from what index.json records ({', '.join(changed)}: "
                "another digest)"
            )
    check_lengths(Path(path), result, entry)
    return result


def listed_parts(
    root: str | Path, split: str, index: EmbeddingIndex
) -> list[tuple[Path, PartEntry]]:
    """The parts of ``split`` that ``index`` lists, with their paths.

    A part file on disk that the index does not list is ignored, with a warning.

    Raises:
        FileNotFoundError: ``index`` lists no part of ``split``.
        ValueError: naming a listed part that is missing.
    """
    root = Path(root)
    entries = index.splits[split].parts if split in index.splits else []
    if not entries:
        raise FileNotFoundError(f"no embeddings of split {split!r} under {root}")
    names = {entry.name for entry in entries}
    for path in existing_parts(root, split):
        if path.name not in names:
            warnings.warn(f"{path}: not listed in {root / INDEX_NAME}, ignored", stacklevel=3)
    paths = [(root / entry.name, entry) for entry in entries]
    for path, _ in paths:
        if not path.is_file():
            raise ValueError(f"{path}: listed in {root / INDEX_NAME} but missing")
    return paths


def load_split(
    root: str | Path, split: str, timeline: bool = False, index: EmbeddingIndex | None = None
) -> EmbeddingSet:
    """Read the track embeddings and labels of every part of ``split`` that the index lists.

    Args:
        root: embeddings folder.
        split: split name.
        timeline: also load every window embedding and timestamp (large for long
            tracks; :func:`iter_timelines` reads them one part at a time instead).
        index: ``root``'s index, if already read.

    Raises:
        FileNotFoundError: no part of ``split`` is listed.
        ValueError: naming the part: missing, changed, inconsistent, or not finite (see
            :func:`read_part`, :func:`check_values`), or a key in two parts.
    """
    index = index if index is not None else read_index(root)
    names = TRACK_ARRAYS + (TIMELINE_ARRAYS if timeline else ())
    parts = []
    seen: dict[str, Path] = {}
    for path, entry in listed_parts(root, split, index):
        part = read_part(path, names, entry)
        check_values(path, part, index)
        for key in part["keys"].tolist():
            if key in seen:
                raise ValueError(f"{path}: key {key!r} is also in {seen[key].name}")
            seen[key] = path
        parts.append(part)
    result = EmbeddingSet(
        keys=[k for p in parts for k in p["keys"].tolist()],
        embeddings=np.concatenate([p["embeddings"] for p in parts]),
        labels=np.concatenate([p["labels"] for p in parts]),
    )
    if timeline:
        starts = np.cumsum([0] + [len(p["timeline"]) for p in parts[:-1]])
        result.timeline = np.concatenate([p["timeline"] for p in parts])
        result.timestamps = np.concatenate([p["timestamps"] for p in parts])
        result.offsets = np.concatenate(
            [[0]] + [p["offsets"][1:] + s for p, s in zip(parts, starts, strict=True)]
        )
    return result


def iter_timelines(
    root: str | Path, split: str, index: EmbeddingIndex | None = None
) -> Iterator[tuple[str, np.ndarray, np.ndarray]]:
    """``(key, (T_i, D) window embeddings, (T_i,) timestamps)`` per track, one part in memory.

    Only listed parts are read, each checked as :func:`load_split` checks it.
    """
    index = index if index is not None else read_index(root)
    for path, entry in listed_parts(root, split, index):
        part = read_part(path, ("keys", *TIMELINE_ARRAYS), entry)
        check_values(path, part, index)
        offsets = part["offsets"]
        for i, key in enumerate(part["keys"].tolist()):
            lo, hi = offsets[i], offsets[i + 1]
            yield key, part["timeline"][lo:hi], part["timestamps"][lo:hi]


class PartWriter:
    """Collects embedded tracks of one split into parts of ``part_size`` tracks.

    Each part is recorded in the writer's journal before it gets its final name (see
    :mod:`lit_mrl.formats.embedding_index`); the run that finishes merges the journals into
    ``index.json``.

    Args:
        root: embeddings folder.
        split: split name.
        part_size: tracks per part.
        writer: this writer's part series (``"r001"`` for rank 1), ``None`` for the plain one.
    """

    def __init__(
        self, root: str | Path, split: str, part_size: int, writer: str | None = None
    ) -> None:
        self.root, self.split, self.part_size, self.writer = Path(root), split, part_size, writer
        names = [p.name for p in existing_parts(root, split)]
        names += [e.name for e in read_journals(root).get(split, [])]
        mine = [int(n[-10:-4]) for n in names if part_writer(n, split) == writer]
        # a number once used (on disk, or journalled by a run killed before the rename,
        # or deleted by hand) is never used again: continue after the last
        self.next_index = max(mine, default=-1) + 1
        self.rows: list[dict[str, Any]] = []
        self.written = 0

    def add(self, row: dict[str, Any]) -> PartEntry | None:
        """Buffer one track; returns the part written when it filled one."""
        self.rows.append({**row, "label": np.asarray(row["label"])})
        return self.flush() if len(self.rows) >= self.part_size else None

    def flush(self) -> PartEntry | None:
        """Write the buffered tracks as the next part (nothing when empty)."""
        if not self.rows:
            return None
        arrays = part_arrays(self.rows)
        entry = part_entry(part_name(self.split, self.next_index, self.writer), arrays)
        self.root.mkdir(parents=True, exist_ok=True)
        append_journal(self.root, self.writer, self.split, entry)  # before the rename
        _save(self.root / entry.name, arrays)
        self.next_index += 1
        self.written += len(self.rows)
        self.rows = []
        return entry
