"""Where ``python -m lit_mrl embed`` reads tracks: shard folders, audio folders, file lists.

Each source is an :class:`~torch.utils.data.IterableDataset` run in loader workers. A
track comes out as blocks of at most ``block_samples`` samples, in order (the extractor
streams them, so memory does not grow with track length): ``key``, ``label`` (encoded by
:func:`~lit_mrl.data.labels.encode_labels`), ``block`` float32 ``(t,)`` at the model's
rate, ``start`` (its first sample) and ``last``. A track that cannot be used gives
``key``, ``source``, ``error`` and ``lost`` (how many tracks the error costs: 1, or the
unread rest of a truncated shard) instead, so one bad file never stops the run.

Work is divided among ``world`` processes (ranks) and their loader workers: reader
``rank * num_workers + worker`` of ``world * num_workers`` takes whole shards (or every
n-th file) when there are enough, and every n-th sample otherwise. Audio files are read
by :func:`lit_mrl.formats.audio.load_audio`, the loader the sharder uses, so a file
embedded directly and through its shard gives the same embedding.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf
from torch.utils.data import IterableDataset, get_worker_info

from lit_mrl.data.labels import encode_labels
from lit_mrl.errors import UsageError
from lit_mrl.formats.audio import iter_audio
from lit_mrl.formats.containers import worth_decoding
from lit_mrl.formats.info import INFO_NAME, read_info
from lit_mrl.formats.info import shard_paths as list_shards
from lit_mrl.formats.shards import FlacRef, decode_error, iter_shard, open_audio

BLOCK_SAMPLES = 60 * 16000  # a minute at 16 kHz


def reader_slice(rank: int, world: int) -> tuple[int, int]:
    """This loader worker's ``(index, count)`` among all readers of all ranks."""
    info = get_worker_info()
    worker, workers = (0, 1) if info is None else (info.id, info.num_workers)
    return rank * workers + worker, world * workers


def _check_length(length: int, min_samples: int) -> None:
    if length < min_samples:
        raise ValueError(f"audio has {length} samples, less than one frame ({min_samples})")


def as_blocks(
    blocks: Iterable[np.ndarray], fields: dict[str, Any], min_samples: int
) -> Iterator[dict[str, Any]]:
    """Block items of one track (one block of look-ahead marks the last); checks its length.

    Raises:
        ValueError: the track is shorter than ``min_samples`` (before anything is yielded).
    """
    start, pending = 0, None
    for block in blocks:
        if pending is not None:
            yield {**fields, "block": pending, "start": start, "last": False}
            start += len(pending)
        pending = block
    total = start + (0 if pending is None else len(pending))
    _check_length(total, min_samples)
    yield {**fields, "block": pending, "start": start, "last": True}


def flac_blocks(
    source: bytes | FlacRef, sample_rate: int, block_samples: int
) -> Iterator[np.ndarray]:
    """Decode encoded audio (bytes, or a member of a shard) a block at a time, mono float32.

    Raises:
        ValueError: undecodable audio, another rate than ``sample_rate``, NaN/Inf, or a
            shard changed on disk since ``source`` was located in it.
    """
    try:
        with open_audio(source) as raw, sf.SoundFile(raw) as file:
            if file.samplerate != sample_rate:
                raise ValueError(
                    f"decoded at {file.samplerate} Hz, info.json says {sample_rate} Hz"
                )
            for block in file.blocks(block_samples, dtype="float32", always_2d=True):
                mono = block[:, 0] if block.shape[1] == 1 else block.mean(axis=1, dtype=np.float32)
                if not np.isfinite(mono).all():
                    raise ValueError("audio contains NaN or Inf")
                yield np.ascontiguousarray(mono)
    except sf.SoundFileError as err:
        raise decode_error(err, source) from err


class ShardTracks(IterableDataset):
    """Decoded tracks of one split of a sharded dataset.

    Args:
        paths: the split's shard files.
        shard_sizes: samples in each shard, per ``info.json`` (counts lost samples).
        sample_rate: the rate ``info.json`` declares, in Hz; samples at another are errors.
        task: ``info.json``'s task type, for :func:`encode_labels`.
        vocabulary: ``info.json``'s label names.
        min_samples: shortest usable track (one log-mel frame).
        skip: keys not to decode (already embedded).
        rank: this process's rank.
        world: number of processes sharing the work.
        block_samples: longest block decoded at once.
    """

    def __init__(
        self,
        paths: list[str],
        shard_sizes: list[int],
        sample_rate: int,
        task: str,
        vocabulary: list[str],
        min_samples: int,
        skip: set[str],
        rank: int = 0,
        world: int = 1,
        block_samples: int = BLOCK_SAMPLES,
    ) -> None:
        self.paths, self.shard_sizes = paths, shard_sizes
        self.sample_rate, self.min_samples = sample_rate, min_samples
        self.task, self.vocabulary, self.skip = task, vocabulary, skip
        self.rank, self.world, self.block_samples = rank, world, block_samples

    def __iter__(self) -> Iterator[dict[str, Any]]:
        reader, readers = reader_slice(self.rank, self.world)
        by_shard = len(self.paths) >= readers
        for shard_index, (path, size) in enumerate(zip(self.paths, self.shard_sizes, strict=True)):
            if by_shard and shard_index % readers != reader:
                continue
            position = 0
            try:
                for sample in iter_shard(path, audio="ref"):  # decoded from disk in blocks
                    mine = by_shard or position % readers == reader
                    position += 1
                    if mine and sample["key"] not in self.skip:
                        yield from self._decode(path, sample)
            except ValueError as err:  # an unreadable or truncated shard: report, go on
                if by_shard or reader == 0:
                    lost = max(size - position, 1)
                    yield {"key": None, "source": path, "error": str(err), "lost": lost}

    def _decode(self, path: str, sample: dict[str, Any]) -> Iterator[dict[str, Any]]:
        key = sample["key"]
        try:
            meta = {"key": key, **sample["json"]}
            label = encode_labels(meta, self.task, self.vocabulary).numpy()
            blocks = flac_blocks(sample["flac"], self.sample_rate, self.block_samples)
            yield from as_blocks(blocks, {"key": key, "label": label}, self.min_samples)
        except ValueError as err:
            yield {"key": key, "source": path, "error": str(err), "lost": 1}
        except KeyError as err:
            yield {"key": key, "source": path, "error": f"metadata lacks {err}", "lost": 1}


class FileTracks(IterableDataset):
    """Audio files decoded, downmixed, resampled and quantised as the sharder does.

    Args:
        files: ``(key, path)`` pairs.
        sample_rate: target rate in Hz.
        min_samples: shortest usable track (one log-mel frame).
        rank: this process's rank.
        world: number of processes sharing the work.
        block_samples: longest block decoded at once.
    """

    def __init__(
        self,
        files: list[tuple[str, Path]],
        sample_rate: int,
        min_samples: int,
        rank: int = 0,
        world: int = 1,
        block_samples: int = BLOCK_SAMPLES,
    ) -> None:
        self.files, self.sample_rate, self.min_samples = files, sample_rate, min_samples
        self.rank, self.world, self.block_samples = rank, world, block_samples

    def __iter__(self) -> Iterator[dict[str, Any]]:
        reader, readers = reader_slice(self.rank, self.world)
        for key, path in self.files[reader::readers]:
            fields = {"key": key, "label": np.zeros(0, dtype=np.float32)}
            try:
                blocks = iter_audio(path, self.sample_rate, self.block_samples)
                yield from as_blocks(blocks, fields, self.min_samples)
            except ValueError as err:  # after some blocks, the extractor drops the track
                yield {"key": key, "source": str(path), "error": str(err), "lost": 1}


@dataclass
class EmbeddingInput:
    """What ``--input`` names: a sharded dataset, or audio files (one split, no labels).

    Args:
        path: the ``--input`` argument, resolved.
        kind: ``"shards"`` or ``"files"``.
        task: label task type (``"none"`` for files).
        vocabulary: label names.
        sizes: tracks per split.
        sample_rate: the shards' rate in Hz (``None`` for files, which are resampled).
        files: ``(key, path)`` of every audio file (``kind == "files"``).
    """

    path: Path
    kind: str
    task: str
    vocabulary: list[str]
    sizes: dict[str, int]
    sample_rate: int | None = None
    files: list[tuple[str, Path]] = field(default_factory=list)

    def check_sample_rate(self, sample_rate: int) -> None:
        """Refuse shards that are not at the model's ``sample_rate`` (files are resampled).

        Raises:
            UsageError: naming both rates.
        """
        if self.sample_rate not in (None, sample_rate):
            raise UsageError(
                f"the shards at {self.path} are at {self.sample_rate} Hz but the model expects "
                f"{sample_rate} Hz: reshard at {sample_rate} Hz (python -m data_prep shard "
                f"--sample_rate {sample_rate})"
            )

    def tracks(
        self,
        split: str,
        sample_rate: int,
        min_samples: int,
        skip: set[str],
        rank: int = 0,
        world: int = 1,
        block_samples: int = BLOCK_SAMPLES,
    ) -> IterableDataset:
        """The split's tracks not in ``skip``, decoded at ``sample_rate``, for one rank."""
        self.check_sample_rate(sample_rate)
        if self.kind == "files":
            todo = [(key, path) for key, path in self.files if key not in skip]
            return FileTracks(todo, sample_rate, min_samples, rank, world, block_samples)
        info = read_info(self.path)
        paths = list_shards(self.path, split)
        sizes = list(info.splits[split].shard_num_samples)
        return ShardTracks(
            paths, sizes, sample_rate, self.task, self.vocabulary, min_samples, skip,
            rank, world, block_samples,
        )  # fmt: skip


def open_input(path: str | Path, file_split: str = "all") -> EmbeddingInput:
    """Describe ``--input``: a shard folder, an audio folder or a list of audio files.

    A folder with ``info.json`` is a sharded dataset. Any other folder is searched
    recursively for audio, told by extension or first bytes as the sharder does
    (:func:`lit_mrl.formats.containers.worth_decoding`; ``notes.txt`` is skipped); keys are
    paths relative to it. A text file lists audio paths, one a line, relative to the
    list's folder, each decided by its content whatever its name; keys are the lines
    as written.

    Raises:
        UsageError: ``path`` does not exist or holds no audio.
    """
    path = Path(path).resolve()
    if (path / INFO_NAME).is_file():
        info = read_info(path)
        sizes = {name: split.num_samples for name, split in info.splits.items()}
        return EmbeddingInput(
            path, "shards", info.task, list(info.vocabulary), sizes, info.sample_rate
        )
    if path.is_dir():
        found = sorted(p for p in path.rglob("*") if p.is_file() and worth_decoding(p))
        files = [(p.relative_to(path).as_posix(), p) for p in found]
    elif path.is_file():
        lines = [line.strip() for line in path.read_text().splitlines()]
        files = [(line, path.parent / line) for line in lines if line and not line.startswith("#")]
    else:
        raise UsageError(f"--input {path} does not exist")
    if not files:
        raise UsageError(
            f"no audio files found in {path} (audio is told by its extension, "
            ".wav .flac .mp3 .m4a ..., or its first bytes)"
        )
    return EmbeddingInput(path, "files", "none", [], {file_split: len(files)}, None, files)
