"""Writing shards: size-bounded, atomically finished WebDataset tars, and whole datasets."""

from __future__ import annotations

import io
import json
import math
import os
import tarfile
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from lit_mrl.formats.files import fsync_dir
from lit_mrl.formats.info import DatasetInfo, SplitInfo, Task, write_info
from lit_mrl.formats.shards import KEY_RE, TAR_END_BYTES, check_names, encode_flac, shard_name


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
        if not KEY_RE.fullmatch(key):
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
        return self._file.tell() + size + TAR_END_BYTES > self.max_bytes

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
        if vocabulary is None:  # the labels seen make the vocabulary: list them first
            samples = list(samples)
            seen.update(label for _, _, meta in samples for label in meta.get("labels", []))
        infos[split] = write_shards(
            samples, root, dataset, split, sample_rate, max_samples=max_samples
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
