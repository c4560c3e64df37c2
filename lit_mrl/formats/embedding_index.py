"""``index.json`` of an embeddings folder: how the embeddings were made, and which parts count.

The index lists every part of every split with its item count, its window count and a
sha256 digest of each of its arrays. Readers use only the listed parts and check each
against its entry (:func:`lit_mrl.formats.embeddings.load_split`), so a part copied in by
hand, left over from another run, or changed since it was written is never read as if
it belonged::

    {"format_version": 2, "embed_dim": 8, "task": "multiclass", "vocabulary": [...],
     "fingerprint": "...", "input": "...", ...,
     "splits": {"train": {"num_samples": 16, "parts": [
         {"name": "train-000000.npz", "num_samples": 16, "num_windows": 20,
          "digests": {"keys": "<sha256>", "embeddings": "...", ...}}]}}}

``embed``'s processes cannot all rewrite one file, so each records the parts it writes in
its own journal (``parts.jsonl``, ``parts.r001.jsonl`` for rank 1), a line per part,
written *before* the part gets its final name: a part on disk with a final name is
always in a journal or the index, even after ``kill -9``. The run that finishes merges
the journals into the index (:func:`recorded_parts`) and deletes them.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lit_mrl.formats.files import atomic_write
from lit_mrl.formats.info import TASKS

# 2: parts listed with counts and digests (1 listed bare names, and readers read every
# part on disk)
FORMAT_VERSION = 2
INDEX_NAME = "index.json"
TRACK_ARRAYS = ("keys", "embeddings", "labels")  # about N x D
TIMELINE_ARRAYS = ("timeline", "offsets", "timestamps")  # W x D: many times larger
PART_ARRAYS = TRACK_ARRAYS + TIMELINE_ARRAYS
_JOURNAL_RE = re.compile(r"parts(?:\.(r\d{3}))?\.jsonl")
_DIGEST_RE = re.compile(r"[0-9a-f]{64}")
# fields of the index itself; every other top-level field says how the embeddings were made
_OWN_FIELDS = ("format_version", "embed_dim", "task", "vocabulary", "splits")


def part_name(split: str, index: int, writer: str | None = None) -> str:
    """File name of part ``index`` of ``split`` (``writer`` names a rank's own series)."""
    middle = "" if writer is None else f"{writer}-"
    return f"{split}-{middle}{index:06d}.npz"


def part_pattern(split: str) -> re.Pattern[str]:
    """The names of ``split``'s parts: ``{split}-[r<rank>-]<6 digits>.npz``."""
    return re.compile(re.escape(split) + r"-(?:(r\d{3})-)?(\d{6})\.npz")


def _count(value: Any, least: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= least


@dataclass(frozen=True)
class PartEntry:
    """One part as the index lists it.

    Args:
        name: file name in the folder (see :func:`part_name`).
        num_samples: tracks N (rows of ``keys``, ``embeddings``, ``labels``).
        num_windows: window embeddings W (rows of ``timeline``, ``timestamps``).
        digests: sha256 of each array (:func:`lit_mrl.formats.embeddings.array_digest`).
    """

    name: str
    num_samples: int
    num_windows: int
    digests: dict[str, str]

    def to_dict(self) -> dict[str, Any]:
        """Plain-JSON form."""
        return {"name": self.name, "num_samples": self.num_samples,
                "num_windows": self.num_windows, "digests": dict(self.digests)}  # fmt: skip

    @classmethod
    def from_dict(cls, data: Any, split: str, where: str) -> PartEntry:
        """Inverse of :meth:`to_dict`, checked; ``where`` names the file in errors.

        Raises:
            ValueError: naming ``where``, the split and the field.
        """
        if not isinstance(data, Mapping):
            raise ValueError(f"{where}: a part of split {split!r} is not an object")
        name = data.get("name")
        if not isinstance(name, str) or not part_pattern(split).fullmatch(name):
            raise ValueError(f"{where}: split {split!r} lists a part named {name!r}")
        digests = data.get("digests")
        problem = (
            "num_samples" if not _count(data.get("num_samples"), 1)
            else "num_windows" if not _count(data.get("num_windows"), 0)
            else "digests" if not isinstance(digests, Mapping)
            or set(digests) != set(PART_ARRAYS)
            or not all(isinstance(d, str) and _DIGEST_RE.fullmatch(d) for d in digests.values())
            else None
        )  # fmt: skip
        if problem:
            raise ValueError(f"{where}: part {name}: field {problem!r} is missing or invalid")
        return cls(name, data["num_samples"], data["num_windows"], dict(digests))


@dataclass
class SplitEntry:
    """The parts of one split, in order."""

    parts: list[PartEntry] = field(default_factory=list)

    @property
    def num_samples(self) -> int:
        """Tracks in the split."""
        return sum(part.num_samples for part in self.parts)

    def to_dict(self) -> dict[str, Any]:
        """Plain-JSON form (``num_samples`` for people; readers sum the parts)."""
        return {"num_samples": self.num_samples, "parts": [p.to_dict() for p in self.parts]}


@dataclass
class EmbeddingIndex:
    """The content of ``index.json``.

    Args:
        embed_dim: embedding size D.
        task: how the labels are meant (``multilabel``, ``multiclass``, ``regression``,
            ``none``).
        vocabulary: label (or regression output) names in class-index order.
        splits: the parts of each split.
        settings: how the embeddings were made (``fingerprint``, ``input``,
            ``window_seconds``, ``checkpoint``, ...), as written.
    """

    embed_dim: int
    task: str
    vocabulary: list[str]
    splits: dict[str, SplitEntry] = field(default_factory=dict)
    settings: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """Plain-JSON form, ``format_version`` first."""
        return {
            "format_version": FORMAT_VERSION, "embed_dim": self.embed_dim, "task": self.task,
            "vocabulary": list(self.vocabulary), **self.settings,
            "splits": {name: split.to_dict() for name, split in self.splits.items()},
        }  # fmt: skip

    @classmethod
    def from_dict(cls, data: Any, where: str) -> EmbeddingIndex:
        """Inverse of :meth:`to_dict`, every field checked; ``where`` names the file.

        Raises:
            ValueError: naming ``where`` and the field.
        """
        if not isinstance(data, dict):
            raise ValueError(f"{where} is not a JSON object")
        checks = {
            "embed_dim": lambda v: _count(v, 1),
            "task": lambda v: v in TASKS,
            "vocabulary": lambda v: isinstance(v, list) and all(isinstance(x, str) for x in v),
            "splits": lambda v: isinstance(v, dict),
        }
        for name, ok in checks.items():
            if name not in data or not ok(data[name]):
                raise ValueError(f"{where}: field {name!r} is missing or invalid")
        splits = {}
        for split, entry in data["splits"].items():
            parts = entry.get("parts") if isinstance(entry, dict) else None
            if not isinstance(parts, list):
                raise ValueError(f"{where}: split {split!r} has no list of 'parts'")
            splits[split] = SplitEntry([PartEntry.from_dict(p, split, where) for p in parts])
            if len({p.name for p in splits[split].parts}) != len(parts):
                raise ValueError(f"{where}: split {split!r} lists a part twice")
        settings = {k: v for k, v in data.items() if k not in _OWN_FIELDS}
        return cls(data["embed_dim"], data["task"], data["vocabulary"], splits, settings)


def index_fields(index: EmbeddingIndex | Mapping[str, Any]) -> dict[str, Any]:
    """``index`` as plain JSON fields (a mapping is taken as the JSON form itself)."""
    return index.to_dict() if isinstance(index, EmbeddingIndex) else dict(index)


def write_index(root: str | Path, index: EmbeddingIndex | Mapping[str, Any]) -> None:
    """Write ``index.json`` atomically.

    ``index`` is an :class:`EmbeddingIndex`, or its JSON fields (``embed_dim``, ``task``,
    ``vocabulary``, any settings); without ``splits`` the parts already listed in
    ``root/index.json`` (by :func:`record_parts`) are kept.
    """
    path = Path(root) / INDEX_NAME
    fields = index_fields(index)
    if "splits" not in fields:
        fields["splits"] = _raw(path).get("splits", {})
    fields = {"format_version": FORMAT_VERSION, **fields}
    fields["splits"] = fields.pop("splits")  # last: the long part
    atomic_write(path, (json.dumps(fields, indent=2) + "\n").encode())


def _raw(path: Path) -> dict[str, Any]:
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError) as err:
        raise ValueError(f"{path} is not valid JSON ({err})") from err
    if not isinstance(data, dict):
        raise ValueError(f"{path} is not a JSON object")
    return data


def record_parts(root: str | Path, split: str, entries: list[PartEntry]) -> None:
    """Add parts to ``split`` in ``root/index.json`` (created with only them if absent).

    For one writer at a time (tests, tools writing a folder by hand); ``embed``'s
    processes journal their parts instead (see the module docstring).
    """
    path = Path(root) / INDEX_NAME
    fields = _raw(path)
    splits = fields.setdefault("splits", {})
    listed = splits.setdefault(split, {"num_samples": 0, "parts": []})
    listed["parts"] = [*listed["parts"], *(e.to_dict() for e in entries)]
    listed["num_samples"] = sum(p["num_samples"] for p in listed["parts"])
    write_index(root, fields)


def read_index(root: str | Path) -> EmbeddingIndex:
    """Read and check ``index.json``.

    Raises:
        FileNotFoundError: naming the missing file.
        ValueError: naming the file and the field that is wrong; for a version-1 index
            (parts without digests), how to update it.
    """
    path = Path(root) / INDEX_NAME
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: run `python -m lit_mrl embed` first")
    data = _raw(path)
    version = data.get("format_version")
    if version == 1:
        raise ValueError(
            f"{path}: format_version 1 lists its parts without digests: rerun the same "
            "`python -m lit_mrl embed` command to update it (nothing is embedded again)"
        )
    if version != FORMAT_VERSION:
        raise ValueError(f"{path}: format_version {version!r} is not {FORMAT_VERSION}")
    return EmbeddingIndex.from_dict(data, str(path))


def read_raw_index(root: str | Path) -> dict[str, Any]:
    """``index.json`` as JSON, unchecked (to upgrade an old version); ``{}`` if absent."""
    return _raw(Path(root) / INDEX_NAME)


def journal_name(writer: str | None) -> str:
    """The journal of a writer series (``None``: the plain series)."""
    return "parts.jsonl" if writer is None else f"parts.{writer}.jsonl"


def journals(root: str | Path) -> list[Path]:
    """Every writer's journal in ``root``."""
    return sorted(p for p in Path(root).glob("parts*.jsonl") if _JOURNAL_RE.fullmatch(p.name))


def append_journal(root: str | Path, writer: str | None, split: str, entry: PartEntry) -> None:
    """Record a part in its writer's journal, durably, before the part is renamed in place."""
    line = json.dumps({"split": split, **entry.to_dict()}) + "\n"
    with open(Path(root) / journal_name(writer), "a") as file:
        file.write(line)
        file.flush()
        os.fsync(file.fileno())


def read_journals(root: str | Path) -> dict[str, list[PartEntry]]:
    """The parts every journal in ``root`` records, per split, in journal order.

    A line cut short by a crash is skipped: its part never got its final name.

    Raises:
        ValueError: naming the journal, for a complete line that is not a part entry.
    """
    found: dict[str, list[PartEntry]] = {}
    for path in journals(root):
        for number, line in enumerate(path.read_text().splitlines(), 1):
            try:
                data = json.loads(line)
            except json.JSONDecodeError:
                continue
            except RecursionError as err:
                raise ValueError(f"{path}: line {number} nests too deeply") from err
            split = data.get("split") if isinstance(data, dict) else None
            if not isinstance(split, str):
                raise ValueError(f"{path}: line {number} names no split")
            found.setdefault(split, []).append(
                PartEntry.from_dict(data, split, f"{path} line {number}")
            )
    return found


def recorded_parts(root: str | Path, index: EmbeddingIndex) -> dict[str, SplitEntry]:
    """The index's parts plus those the journals record, whose files exist, per split."""
    root = Path(root)
    merged: dict[str, dict[str, PartEntry]] = {}
    for split, entry in index.splits.items():
        merged.setdefault(split, {}).update((p.name, p) for p in entry.parts)
    for split, entries in read_journals(root).items():
        merged.setdefault(split, {}).update((p.name, p) for p in entries)
    found = {
        split: SplitEntry([p for p in parts.values() if (root / p.name).is_file()])
        for split, parts in merged.items()
    }
    return {split: entry for split, entry in found.items() if entry.parts}
