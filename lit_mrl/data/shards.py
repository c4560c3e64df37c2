"""The shard format, defined in one place.

A dataset is a folder of WebDataset tar shards plus an ``info.json``::

    shards/mycat/
        info.json
        mycat-train-000000.tar      # {key}.flac + {key}.json per sample
        mycat-train-000001.tar
        mycat-valid-000000.tar

Each sample is one track: ``{key}.flac`` (mono, PCM_16, at the dataset's
``sample_rate``) and ``{key}.json`` (``key``, ``track_id``, ``split``,
``duration`` in seconds, ``labels``, optionally ``targets`` and ``source``).
Shards and ``info.json`` are written to a temporary name, fsynced and renamed,
so a file with a final name is always complete.

Readers here use :mod:`tarfile` and look only at ``.flac`` and ``.json``
members with a safe key (``[A-Za-z0-9_-]+``); anything else in a shard
(``.pyd``, ``.pickle``, ``../x.flac``, ...) is skipped unread, because shards
may come from outside (``python -m data_prep.verify`` reports it).
"""

from __future__ import annotations

import io
import json
import math
import os
import re
import tarfile
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal, NamedTuple, get_args

import numpy as np
import soundfile as sf

# decode_audio lives with the audio loader; re-exported here for existing imports
from lit_mrl.data.audio import decode_audio as decode_audio
from lit_mrl.data.audio import quantize_pcm16
from lit_mrl.data.files import atomic_write, fsync_dir

FORMAT_VERSION = 1
INFO_NAME = "info.json"
Task = Literal["multilabel", "multiclass", "regression", "none"]
TASKS: tuple[str, ...] = get_args(Task)
AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg", ".mp3", ".aiff", ".aif")

_KEY_RE = re.compile(r"[A-Za-z0-9_-]+")
_UNSAFE_RE = re.compile(r"[^A-Za-z0-9_-]")
_SPLIT_RE = re.compile(r"[A-Za-z0-9_]+")
_DATASET_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")
# tar adds two zero blocks at the end and pads to a 10 KiB record
_TAR_END_BYTES = 10240


def sanitize_key(text: str) -> str:
    """Turn a path or name into a WebDataset key.

    WebDataset splits member names at the first dot, so keys hold only
    ``[A-Za-z0-9_-]``: a trailing audio extension is dropped, every other
    character becomes ``_``, and leading/trailing ``_`` are stripped (from
    absolute or ``../`` paths). ``"rock/rock.00001.wav"`` -> ``"rock_rock_00001"``.

    Raises:
        ValueError: if nothing usable is left.
    """
    stem = text
    suffix = Path(text).suffix
    if suffix.lower() in AUDIO_EXTENSIONS:
        stem = text[: -len(suffix)]
    key = _UNSAFE_RE.sub("_", stem).strip("_")
    if not key:
        raise ValueError(f"cannot make a shard key from {text!r}")
    return key


def encode_flac(audio: np.ndarray, sample_rate: int) -> bytes:
    """Encode mono float audio ``(T,)`` in [-1, 1] as FLAC PCM_16 bytes.

    Values outside [-1, 1] are clipped. Quantisation is :func:`quantize_pcm16`
    (``round(x * 32768)``), so audio already on the int16 grid (``k / 32768``)
    decodes back bit-exactly.

    Raises:
        ValueError: for non-1-D, empty or non-finite audio.
    """
    audio = np.asarray(audio)
    if audio.ndim != 1 or audio.size == 0:
        raise ValueError(f"expected non-empty mono audio (T,), got shape {audio.shape}")
    if not np.isfinite(audio).all():
        raise ValueError("audio contains NaN or Inf")
    buffer = io.BytesIO()
    sf.write(buffer, quantize_pcm16(audio), sample_rate, format="FLAC", subtype="PCM_16")
    return buffer.getvalue()


class ShardName(NamedTuple):
    """The parts of a shard file name."""

    split: str
    partition: int | None
    index: int


def shard_name(dataset: str, split: str, index: int, partition: int | None = None) -> str:
    """``{dataset}-{split}-{index:06d}.tar``, or ``{dataset}-{split}-p{partition:03d}-{index:06d}.tar``."""
    middle = "" if partition is None else f"p{partition:03d}-"
    return f"{dataset}-{split}-{middle}{index:06d}.tar"


def parse_shard_name(name: str, dataset: str) -> ShardName | None:
    """Split a complete shard's file name of ``dataset`` into its parts; None if it is not one."""
    match = re.fullmatch(re.escape(dataset) + r"-([A-Za-z0-9_]+)-(?:p(\d{3})-)?(\d{6})\.tar", name)
    if match is None:
        return None
    split, partition, index = match.groups()
    return ShardName(split, None if partition is None else int(partition), int(index))


def check_names(dataset: str, split: str) -> None:
    """Raise ValueError unless ``dataset`` and ``split`` are usable in shard names."""
    if not _DATASET_RE.fullmatch(dataset):
        raise ValueError(f"dataset name {dataset!r} must match {_DATASET_RE.pattern}")
    if not _SPLIT_RE.fullmatch(split):
        raise ValueError(f"split name {split!r} must match {_SPLIT_RE.pattern}")


def _check_meta(key: str, split: str, meta: Mapping[str, Any]) -> dict[str, Any]:
    record = dict(meta)
    for name, expected in (("key", key), ("split", split)):
        if record.setdefault(name, expected) != expected:
            raise ValueError(f"meta[{name!r}] is {record[name]!r} but the sample's is {expected!r}")
    duration = record.get("duration")
    if not isinstance(duration, (int, float)) or not math.isfinite(duration):
        raise ValueError(f"sample {key!r}: meta needs a finite 'duration' in seconds")
    labels = record.get("labels")
    if not isinstance(labels, list) or not all(isinstance(label, str) for label in labels):
        raise ValueError(f"sample {key!r}: meta needs 'labels' as a list of strings")
    return record


class ShardWriter:
    """Write samples into size-bounded tar shards named ``{dataset}-{split}-{index:06d}.tar``.

    Each shard is written as ``{name}.tmp`` and renamed when it is full or on
    :meth:`close`. Leaving the ``with`` block by an exception deletes the open
    ``.tmp`` (finished shards stay); a killed process leaves only the ``.tmp``.

    Args:
        out_dir: folder for the shards (created if missing).
        dataset: dataset name, the first part of each shard name.
        split: split name (``[A-Za-z0-9_]+``).
        max_bytes: start a new shard before one would exceed this size; a single
            larger sample gets a shard of its own.
        max_samples: also start a new shard after this many samples.
        start_index: index of the first shard (continue numbering on resume).
        partition: index of the data-prep partition, put in the names as ``p{partition:03d}``.

    Attributes:
        shards: file names of the finished shards, in order.
        shard_num_samples: sample count of each finished shard.
        shard_seconds: audio seconds in each finished shard.
    """

    def __init__(
        self,
        out_dir: str | Path,
        dataset: str,
        split: str,
        max_bytes: int = 500_000_000,
        max_samples: int | None = None,
        start_index: int = 0,
        *,
        partition: int | None = None,
    ) -> None:
        check_names(dataset, split)
        if max_samples is not None and max_samples < 1:
            raise ValueError(f"max_samples must be at least 1, got {max_samples}")
        self.out_dir = Path(out_dir)
        self.out_dir.mkdir(parents=True, exist_ok=True)
        self.dataset, self.split, self.partition = dataset, split, partition
        self.max_bytes, self.max_samples = max_bytes, max_samples
        self.shards: list[str] = []
        self.shard_num_samples: list[int] = []
        self.shard_seconds: list[float] = []
        self._index = start_index
        self._keys: set[str] = set()
        self._file: io.BufferedWriter | None = None
        self._tar: tarfile.TarFile | None = None
        self._count = 0
        self._seconds = 0.0

    @property
    def num_samples(self) -> int:
        """Samples written so far, including the open shard."""
        return sum(self.shard_num_samples) + self._count

    def write(self, key: str, flac: bytes, meta: Mapping[str, Any]) -> None:
        """Add one sample.

        Args:
            key: sample key (``[A-Za-z0-9_-]+``, unique within this writer).
            flac: encoded audio, see :func:`encode_flac`.
            meta: the ``{key}.json`` content; needs ``duration`` and ``labels``;
                ``key`` and ``split`` are filled in when absent.
        """
        if not _KEY_RE.fullmatch(key):
            raise ValueError(f"key {key!r} must match [A-Za-z0-9_-]+ (see sanitize_key)")
        if key in self._keys:
            raise ValueError(f"duplicate key {key!r} in split {self.split!r}")
        record = _check_meta(key, self.split, meta)
        # allow_nan=False: NaN is not JSON, and a NaN target would poison training
        payload = json.dumps(record, ensure_ascii=False, sort_keys=True, allow_nan=False).encode()
        members = [_tar_info(f"{key}.flac", len(flac)), _tar_info(f"{key}.json", len(payload))]
        if self._tar is not None and self._is_full(members):
            self._finish()
        if self._tar is None:
            self._open()
        for info, data in zip(members, (flac, payload), strict=True):
            self._tar.addfile(info, io.BytesIO(data))
        self._keys.add(key)
        self._count += 1
        self._seconds += float(record["duration"])

    def close(self) -> None:
        """Finish the open shard, if any."""
        if self._tar is not None:
            self._finish()

    def abort(self) -> None:
        """Drop the open shard's temporary file; finished shards stay."""
        if self._file is not None:
            self._file.close()
            Path(self._file.name).unlink(missing_ok=True)
        self._file, self._tar, self._count, self._seconds = None, None, 0, 0.0

    def __enter__(self) -> ShardWriter:
        return self

    def __exit__(self, exc_type: object, exc: object, traceback: object) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()

    def _is_full(self, members: list[tarfile.TarInfo]) -> bool:
        if self.max_samples is not None and self._count >= self.max_samples:
            return True
        size = sum(len(info.tobuf(tarfile.PAX_FORMAT)) + _padded(info.size) for info in members)
        return self._file.tell() + size + _TAR_END_BYTES > self.max_bytes

    def _open(self) -> None:
        name = shard_name(self.dataset, self.split, self._index, self.partition)
        final = self.out_dir / name
        if final.exists():
            raise FileExistsError(f"{final} already exists; refusing to overwrite a shard")
        # both stay open across write() calls; _finish and abort close them
        self._file = open(final.with_name(name + ".tmp"), "wb")  # noqa: SIM115
        self._tar = tarfile.open(fileobj=self._file, mode="w", format=tarfile.PAX_FORMAT)  # noqa: SIM115

    def _finish(self) -> None:
        self._tar.close()  # writes the end-of-archive blocks; leaves the file open
        self._file.flush()
        os.fsync(self._file.fileno())
        self._file.close()
        tmp = Path(self._file.name)
        os.replace(tmp, tmp.with_suffix(""))
        fsync_dir(self.out_dir)
        self.shards.append(tmp.with_suffix("").name)
        self.shard_num_samples.append(self._count)
        self.shard_seconds.append(self._seconds)
        self._index += 1
        self._file, self._tar, self._count, self._seconds = None, None, 0, 0.0


def _tar_info(name: str, size: int) -> tarfile.TarInfo:
    # fixed owner, mode and mtime so the same samples give byte-identical shards
    info = tarfile.TarInfo(name)
    info.size, info.mode, info.mtime = size, 0o444, 0
    return info


def _padded(size: int) -> int:
    return -(-size // tarfile.BLOCKSIZE) * tarfile.BLOCKSIZE


def _member_key(name: str) -> tuple[str, str] | None:
    # WebDataset's rule: the key ends at the first dot of the base name
    folder, _, base = name.rpartition("/")
    if "." not in base:
        return None
    stem, _, extension = base.partition(".")
    return (f"{folder}/{stem}" if folder else stem), extension


def _iter_members(path: Path, with_audio: bool) -> Iterator[dict[str, Any]]:
    try:
        with tarfile.open(path, "r:") as tar:
            seen: set[str] = set()
            key, parts = None, {}
            for member in tar:  # reads headers only; unread data is skipped by seeking
                split_name = _member_key(member.name) if member.isfile() else None
                if (
                    split_name is None
                    or split_name[1] not in ("flac", "json")
                    or not _KEY_RE.fullmatch(split_name[0])  # "../x", "/abs/x": not our keys
                ):
                    continue  # anything else is never read, let alone unpickled
                if split_name[0] != key:
                    if key is not None:
                        yield _make_sample(path, key, parts)
                    key, parts = split_name[0], {}
                    if key in seen:
                        raise ValueError(f"{path}: sample {key!r} appears twice")
                    seen.add(key)
                extension = split_name[1]
                if extension in parts:
                    raise ValueError(f"{path}: sample {key!r} has two .{extension} members")
                keep = with_audio or extension == "json"
                parts[extension] = tar.extractfile(member).read() if keep else b""
            if key is not None:
                yield _make_sample(path, key, parts)
    except tarfile.TarError as err:
        raise ValueError(f"{path}: not a readable tar shard ({err})") from err


def _make_sample(path: Path, key: str, parts: dict[str, bytes]) -> dict[str, Any]:
    missing = {"flac", "json"} - parts.keys()
    if missing:
        raise ValueError(f"{path}: sample {key!r} lacks {', '.join(sorted(missing))}")
    try:
        meta = json.loads(parts["json"])
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ValueError(f"{path}: sample {key!r} has invalid JSON ({err})") from err
    if not isinstance(meta, dict):
        raise ValueError(f"{path}: sample {key!r}: JSON is not an object")
    return {"key": key, "flac": parts["flac"], "json": meta}


def iter_shard(path: str | Path) -> Iterator[dict[str, Any]]:
    """Yield ``{"key", "flac": bytes, "json": dict}`` for each sample of a shard, in order.

    Raises:
        ValueError: naming the shard and key, for a sample without ``.flac`` or
            ``.json``, invalid JSON, a repeated key, or an unreadable tar.
    """
    return _iter_members(Path(path), with_audio=True)


def read_shard_meta(path: str | Path) -> list[dict[str, Any]]:
    """The ``{key}.json`` dicts of a shard, without reading its audio."""
    return [sample["json"] for sample in _iter_members(Path(path), with_audio=False)]


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
        return cls(
            dataset=_typed(data, "dataset", str),
            sample_rate=_typed(data, "sample_rate", int),
            task=task,
            vocabulary=_typed_list(data, "vocabulary", str),
            splits={name: SplitInfo.from_dict(split) for name, split in splits.items()},
            total_seconds=float(_typed(data, "total_seconds", (int, float))),
            format_version=version,
        )


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


def read_info(root: str | Path, name: str = INFO_NAME) -> DatasetInfo:
    """Read ``root/name`` (``root`` may also be the file itself).

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
    try:
        return DatasetInfo.from_dict(json.loads(path.read_text()))
    except (json.JSONDecodeError, UnicodeDecodeError, ValueError) as err:
        raise ValueError(f"{path} is not a valid dataset info file: {err}") from err


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


def write_shards(
    samples: Iterable[tuple[str, np.ndarray, Mapping[str, Any]]],
    out_dir: str | Path,
    dataset: str,
    split: str,
    sample_rate: int,
    max_bytes: int = 500_000_000,
    max_samples: int | None = None,
    start_index: int = 0,
) -> SplitInfo:
    """Encode ``(key, audio, meta)`` triples into shards; returns the split's entry for ``info.json``.

    ``audio`` is float32 mono ``(T,)`` at ``sample_rate``. ``meta`` may be
    partial: ``track_id`` defaults to the key, ``labels`` to ``[]`` and
    ``duration`` to ``T / sample_rate``.
    """
    with ShardWriter(out_dir, dataset, split, max_bytes, max_samples, start_index) as writer:
        for key, audio, meta in samples:
            record = {"track_id": key, "labels": [], "duration": len(audio) / sample_rate}
            record.update(meta)
            writer.write(key, encode_flac(audio, sample_rate), record)
    return SplitInfo(
        num_samples=writer.num_samples,
        seconds=round(sum(writer.shard_seconds), 3),
        shards=writer.shards,
        shard_num_samples=writer.shard_num_samples,
    )


def write_dataset(
    root: str | Path,
    dataset: str,
    splits: Mapping[str, Iterable[tuple[str, np.ndarray, Mapping[str, Any]]]],
    sample_rate: int,
    task: Task = "none",
    vocabulary: list[str] | None = None,
    max_samples: int | None = None,
) -> DatasetInfo:
    """Write every split's shards and ``info.json``: a whole small dataset in one call.

    Args:
        root: dataset folder.
        dataset: dataset name.
        splits: split name -> ``(key, audio, meta)`` triples, see :func:`write_shards`.
        sample_rate: sample rate of all audio, in Hz.
        task: task type recorded in ``info.json``.
        vocabulary: label names; by default the sorted set of labels seen.
        max_samples: samples per shard (default: bound by size only).
    """
    seen: set[str] = set()
    infos = {}
    for split, samples in splits.items():
        listed = list(samples)
        seen.update(label for _, _, meta in listed for label in meta.get("labels", []))
        infos[split] = write_shards(
            listed, root, dataset, split, sample_rate, max_samples=max_samples
        )
    info = DatasetInfo(
        dataset=dataset,
        sample_rate=sample_rate,
        task=task,
        vocabulary=sorted(seen) if vocabulary is None else list(vocabulary),
        splits=infos,
        total_seconds=round(sum(split.seconds for split in infos.values()), 3),
    )
    write_info(root, info)
    return info
