"""On-disk format of extracted embeddings, defined in one place.

A folder per (embedding model, dataset)::

    embeddings/gtzan/
        index.json              # embed_dim, task, vocabulary, windowing, fingerprint, splits
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

Readers load only the arrays they need: track embeddings and labels are about
``N x D``, while the timelines of long tracks are many times larger.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from lit_mrl.data.files import atomic_file, atomic_write
from lit_mrl.data.info import TASKS

FORMAT_VERSION = 1
INDEX_NAME = "index.json"
TRACK_ARRAYS = ("keys", "embeddings", "labels")
TIMELINE_ARRAYS = ("timeline", "offsets", "timestamps")


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


def part_name(split: str, index: int, writer: str | None = None) -> str:
    """File name of part ``index`` of ``split`` (``writer`` names a rank's own series)."""
    middle = "" if writer is None else f"{writer}-"
    return f"{split}-{middle}{index:06d}.npz"


def _part_pattern(split: str) -> re.Pattern[str]:
    return re.compile(re.escape(split) + r"-(?:(r\d{3})-)?(\d{6})\.npz")


def existing_parts(root: str | Path, split: str) -> list[Path]:
    """Complete parts of ``split`` on disk, of every writer, in name order.

    Temporary files and anything not named like a part are ignored.
    """
    pattern = _part_pattern(split)
    return [p for p in sorted(Path(root).glob(f"{split}-*.npz")) if pattern.fullmatch(p.name)]


def part_writer(path: Path, split: str) -> str | None:
    """The writer series of a part file (``None`` for the plain series)."""
    match = _part_pattern(split).fullmatch(path.name)
    return match.group(1) if match else None


def write_part(root: str | Path, name: str, rows: list[dict[str, Any]]) -> Path:
    """Write one part atomically.

    Args:
        root: embeddings folder (created).
        name: file name, see :func:`part_name`.
        rows: one dict per track: ``key`` (str), ``embedding`` ``(D,)``, ``label``
            (array), ``timeline`` ``(T_i, D)``, ``timestamps`` ``(T_i,)``.

    Returns:
        The path of the written part.
    """
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    lengths = [len(r["timestamps"]) for r in rows]
    arrays = {
        "keys": np.array([r["key"] for r in rows], dtype=str),
        "embeddings": np.stack([r["embedding"] for r in rows]).astype(np.float32),
        "labels": np.stack([np.asarray(r["label"]) for r in rows]),
        "timeline": np.concatenate([r["timeline"] for r in rows]).astype(np.float32),
        "offsets": np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64),
        "timestamps": np.concatenate([r["timestamps"] for r in rows]).astype(np.float32),
    }
    path = root / name
    with atomic_file(path) as file:
        np.savez(file, **arrays)
    return path


def read_part(path: str | Path, arrays: tuple[str, ...] = TRACK_ARRAYS) -> dict[str, np.ndarray]:
    """The named arrays of one part (others are never read from disk).

    Raises:
        ValueError: naming the part, if it is not a readable ``.npz`` of plain arrays or
            lacks an array.
    """
    try:
        with np.load(path, allow_pickle=False) as data:
            missing = [name for name in arrays if name not in data.files]
            if missing:
                raise ValueError(f"{path}: not an embeddings part (no {', '.join(missing)})")
            return {name: data[name] for name in arrays}
    except (OSError, EOFError) as err:
        raise ValueError(f"{path}: not a readable embeddings part ({err})") from err


def done_keys(root: str | Path, split: str) -> set[str]:
    """Keys already embedded for ``split`` (for resuming)."""
    return {k for path in existing_parts(root, split) for k in read_part(path, ("keys",))["keys"]}


def load_split(root: str | Path, split: str, timeline: bool = False) -> EmbeddingSet:
    """Read the track embeddings and labels of every part of ``split``.

    Args:
        root: embeddings folder.
        split: split name.
        timeline: also load every window embedding and timestamp (large for long
            tracks; :func:`iter_timelines` reads them one part at a time instead).

    Raises:
        FileNotFoundError: no part of ``split`` exists under ``root``.
    """
    paths = existing_parts(root, split)
    if not paths:
        raise FileNotFoundError(f"no embeddings of split {split!r} under {root}")
    names = TRACK_ARRAYS + (TIMELINE_ARRAYS if timeline else ())
    parts = [read_part(p, names) for p in paths]
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


def iter_timelines(root: str | Path, split: str) -> Iterator[tuple[str, np.ndarray, np.ndarray]]:
    """``(key, (T_i, D) window embeddings, (T_i,) timestamps)`` per track, one part in memory."""
    for path in existing_parts(root, split):
        part = read_part(path, ("keys", *TIMELINE_ARRAYS))
        offsets = part["offsets"]
        for i, key in enumerate(part["keys"].tolist()):
            lo, hi = offsets[i], offsets[i + 1]
            yield key, part["timeline"][lo:hi], part["timestamps"][lo:hi]


def write_index(root: str | Path, index: dict[str, Any]) -> None:
    """Write ``index.json`` atomically (``format_version`` is added)."""
    text = json.dumps({"format_version": FORMAT_VERSION, **index}, indent=2) + "\n"
    atomic_write(Path(root) / INDEX_NAME, text.encode())


def read_index(root: str | Path) -> dict[str, Any]:
    """Read and check ``index.json``: ``embed_dim``, ``task``, ``vocabulary``, ``splits``, ...

    Raises:
        FileNotFoundError: naming the missing file.
        ValueError: naming the file and the field that is wrong.
    """
    path = Path(root) / INDEX_NAME
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: run `python -m lit_mrl embed` first")
    try:
        index = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ValueError(f"{path} is not valid JSON ({err})") from err
    checks = {
        "embed_dim": lambda v: isinstance(v, int) and not isinstance(v, bool) and v > 0,
        "task": lambda v: v in TASKS,
        "vocabulary": lambda v: isinstance(v, list) and all(isinstance(x, str) for x in v),
    }
    if not isinstance(index, dict):
        raise ValueError(f"{path} is not a JSON object")
    for field, ok in checks.items():
        if field not in index or not ok(index[field]):
            raise ValueError(f"{path}: field {field!r} is missing or invalid")
    if not isinstance(index.setdefault("splits", {}), dict):
        raise ValueError(f"{path}: field 'splits' is not an object")
    if index.get("format_version") != FORMAT_VERSION:
        raise ValueError(
            f"{path}: format_version {index.get('format_version')!r} is not {FORMAT_VERSION}"
        )
    return index


class PartWriter:
    """Collects embedded tracks of one split into parts of ``part_size`` tracks.

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
        mine = [p for p in existing_parts(root, split) if part_writer(p, split) == writer]
        # after parts were deleted by hand the numbers have gaps: continue after the last
        self.next_index = int(mine[-1].name[-10:-4]) + 1 if mine else 0
        self.rows: list[dict[str, Any]] = []
        self.written = 0

    def add(self, row: dict[str, Any]) -> Path | None:
        """Buffer one track; returns the part written when it filled one."""
        self.rows.append({**row, "label": np.asarray(row["label"])})
        return self.flush() if len(self.rows) >= self.part_size else None

    def flush(self) -> Path | None:
        """Write the buffered tracks as the next part (nothing when empty)."""
        if not self.rows:
            return None
        path = write_part(self.root, part_name(self.split, self.next_index, self.writer), self.rows)
        self.next_index += 1
        self.written += len(self.rows)
        self.rows = []
        return path
