"""``info.json``: what a sharded dataset holds (splits, counts, rate, labels, task).

Read it with :func:`read_info`, which checks every field, so a hand-edited or foreign file
fails with a message naming the file and the field.
"""

from __future__ import annotations

import copy
import json
import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal, get_args

from lit_mrl.formats.files import atomic_write

FORMAT_VERSION = 1
INFO_NAME = "info.json"
Task = Literal["multilabel", "multiclass", "regression", "none"]
TASKS: tuple[str, ...] = get_args(Task)


@dataclass
class SplitInfo:
    """One split's entry in ``info.json``.

    Args:
        num_samples: samples in the split.
        seconds: total audio duration of the split.
        shards: shard file names, relative to the dataset folder.
        shard_num_samples: sample count of each shard, aligned with ``shards``.
    """

    num_samples: int
    seconds: float
    shards: list[str] = field(default_factory=list)
    shard_num_samples: list[int] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """Plain-JSON form."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> SplitInfo:
        """Inverse of :meth:`to_dict`; raises ValueError on missing or mistyped fields."""
        info = cls(
            num_samples=_typed(data, "num_samples", int),
            seconds=float(_typed(data, "seconds", (int, float))),
            shards=_typed_list(data, "shards", str),
            shard_num_samples=_typed_list(data, "shard_num_samples", int),
        )
        if len(info.shards) != len(info.shard_num_samples):
            raise ValueError("'shards' and 'shard_num_samples' differ in length")
        counts = [info.num_samples, *info.shard_num_samples]
        if min(counts) < 0 or not 0 <= info.seconds < math.inf:
            raise ValueError("a count or duration is negative or not finite")
        return info


@dataclass
class DatasetInfo:
    """The content of ``info.json``.

    Args:
        dataset: dataset name (shard name prefix).
        sample_rate: sample rate of every sample, in Hz.
        task: how ``labels`` / ``targets`` are meant.
        vocabulary: label names (regression: output names, the order of ``targets``).
        splits: per-split counts and shard lists.
        total_seconds: audio seconds over all splits.
        format_version: version of this format.
    """

    dataset: str
    sample_rate: int
    task: Task
    vocabulary: list[str]
    splits: dict[str, SplitInfo]
    total_seconds: float
    format_version: int = FORMAT_VERSION

    def to_dict(self) -> dict[str, Any]:
        """Plain-JSON form, keys in the documented order."""
        return {
            "format_version": self.format_version,
            "dataset": self.dataset,
            "sample_rate": self.sample_rate,
            "task": self.task,
            "vocabulary": list(self.vocabulary),
            "total_seconds": self.total_seconds,
            "splits": {name: split.to_dict() for name, split in self.splits.items()},
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> DatasetInfo:
        """Inverse of :meth:`to_dict`; raises ValueError on missing or mistyped fields."""
        version = _typed(data, "format_version", int)
        if version != FORMAT_VERSION:
            raise ValueError(
                f"format_version {version} is not supported (this code reads {FORMAT_VERSION})"
            )
        task = _typed(data, "task", str)
        if task not in TASKS:
            raise ValueError(f"task {task!r} is not one of {TASKS}")
        splits = _typed(data, "splits", dict)
        sample_rate = _typed(data, "sample_rate", int)
        if sample_rate <= 0:
            raise ValueError(f"field 'sample_rate' is {sample_rate}, not a positive rate in Hz")
        return cls(
            dataset=_typed(data, "dataset", str),
            sample_rate=sample_rate,
            task=task,
            vocabulary=_typed_list(data, "vocabulary", str),
            splits={name: _split(name, split) for name, split in splits.items()},
            total_seconds=float(_typed(data, "total_seconds", (int, float))),
            format_version=version,
        )


def _split(name: str, data: Any) -> SplitInfo:
    try:
        return SplitInfo.from_dict(data)
    except ValueError as err:
        raise ValueError(f"split {name!r}: {err}") from err


def _typed(data: Mapping[str, Any], name: str, kind: type | tuple[type, ...]) -> Any:
    if not isinstance(data, Mapping) or name not in data:
        raise ValueError(f"missing field {name!r}")
    value = data[name]
    if not isinstance(value, kind) or isinstance(value, bool):
        raise ValueError(f"field {name!r} has the wrong type ({type(value).__name__})")
    return value


def _typed_list(data: Mapping[str, Any], name: str, kind: type) -> list:
    value = _typed(data, name, list)
    if not all(isinstance(item, kind) and not isinstance(item, bool) for item in value):
        raise ValueError(f"field {name!r} must be a list of {kind.__name__}")
    return value


def write_info(root: str | Path, info: DatasetInfo, name: str = INFO_NAME) -> Path:
    """Atomically write ``info`` as ``root/name``; returns the path."""
    path = Path(root) / name
    atomic_write(path, (json.dumps(info.to_dict(), indent=2) + "\n").encode())
    return path


_PARSED: dict[tuple[str, int, int], DatasetInfo] = {}  # (path, mtime_ns, size) -> parsed


def read_info(root: str | Path, name: str = INFO_NAME) -> DatasetInfo:
    """Read ``root/name`` (``root`` may also be the file itself).

    A file is parsed once per process while it is unchanged (its path, modification time
    and size are the key): the CLI, the data module and the callbacks of one run share
    the parse; each caller gets its own copy.

    Raises:
        FileNotFoundError: if it does not exist.
        ValueError: if it is not a valid ``info.json``; both messages name the path.
    """
    path = Path(root)
    if path.is_dir() or not path.exists():
        path = path / name
    if not path.is_file():
        raise FileNotFoundError(
            f"no dataset info at {path} (make shards with python -m data_prep.shard)"
        )
    stat = path.stat()
    key = (str(path.resolve()), stat.st_mtime_ns, stat.st_size)
    if key not in _PARSED:
        try:
            _PARSED[key] = DatasetInfo.from_dict(json.loads(path.read_text()))
        except (json.JSONDecodeError, UnicodeDecodeError, ValueError, RecursionError) as err:
            raise ValueError(f"{path} is not a valid dataset info file: {err}") from err
    return copy.deepcopy(_PARSED[key])


def shard_paths(root: str | Path, split: str) -> list[str]:
    """Absolute paths of ``split``'s shards, as listed in ``root/info.json``.

    Raises:
        ValueError: naming the split and the available ones, if ``split`` is absent.
    """
    info = read_info(root)
    if split not in info.splits:
        available = ", ".join(sorted(info.splits)) or "none"
        raise ValueError(
            f"split {split!r} is not in {Path(root) / INFO_NAME} (available: {available})"
        )
    folder = Path(root).resolve()
    return [str(folder / name) for name in info.splits[split].shards]
