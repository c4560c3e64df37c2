"""On-disk format of extracted embeddings, defined in one place.

A folder per (embedding model, dataset)::

    embeddings/gtzan/
        index.json              # embed_dim, task, vocabulary, windowing, per-split parts
        train-000000.npz        # keys, track embeddings, labels, timeline, timestamps
        train-000001.npz
        test-000000.npz

Each part is an ``.npz`` of plain arrays (no pickled objects; read with
``allow_pickle=False``), written to a temporary name and renamed, so an interrupted
extraction resumes from the parts that exist.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

FORMAT_VERSION = 1
INDEX_NAME = "index.json"


@dataclass
class EmbeddingSet:
    """Embeddings of one split.

    Args:
        keys: ``N`` sample keys.
        embeddings: ``(N, D)`` float32 track embeddings (mean of the timeline).
        labels: training targets as :func:`lit_mrl.data.datamodule.encode_labels`
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


def part_name(split: str, index: int) -> str:
    """File name of part ``index`` of ``split``."""
    return f"{split}-{index:06d}.npz"


def write_part(root: str | Path, split: str, index: int, rows: list[dict[str, Any]]) -> Path:
    """Write one part atomically.

    Args:
        root: embeddings folder.
        split: split name.
        index: part number.
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
    path = root / part_name(split, index)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as f:
        np.savez(f, **arrays)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    return path


def existing_parts(root: str | Path, split: str) -> list[Path]:
    """Complete parts of ``split`` on disk, in order (temporary files ignored)."""
    return sorted(Path(root).glob(f"{split}-[0-9][0-9][0-9][0-9][0-9][0-9].npz"))


def _load_part(path: Path) -> dict[str, np.ndarray]:
    with np.load(path, allow_pickle=False) as data:
        return {name: data[name] for name in data.files}


def done_keys(root: str | Path, split: str) -> set[str]:
    """Keys already embedded for ``split`` (for resuming)."""
    keys: set[str] = set()
    for path in existing_parts(root, split):
        with np.load(path, allow_pickle=False) as data:
            keys.update(data["keys"].tolist())
    return keys


def load_split(root: str | Path, split: str, timeline: bool = False) -> EmbeddingSet:
    """Read every part of ``split``.

    Args:
        root: embeddings folder.
        split: split name.
        timeline: also load the window embeddings and timestamps.

    Raises:
        FileNotFoundError: no part of ``split`` exists under ``root``.
    """
    paths = existing_parts(root, split)
    if not paths:
        raise FileNotFoundError(f"no embeddings of split {split!r} under {root}")
    parts = [_load_part(p) for p in paths]
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


def write_index(root: str | Path, index: dict[str, Any]) -> None:
    """Write ``index.json`` atomically (``format_version`` is added)."""
    path = Path(root) / INDEX_NAME
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps({"format_version": FORMAT_VERSION, **index}, indent=2))
    os.replace(tmp, path)


def read_index(root: str | Path) -> dict[str, Any]:
    """Read ``index.json``: ``embed_dim``, ``task``, ``vocabulary``, ``splits``, ...

    Raises:
        FileNotFoundError: naming the missing file.
    """
    path = Path(root) / INDEX_NAME
    if not path.exists():
        raise FileNotFoundError(f"{path} not found: run `python -m lit_mrl embed` first")
    return json.loads(path.read_text())
