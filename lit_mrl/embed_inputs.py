"""Where ``python -m lit_mrl embed`` reads tracks: shard folders, audio folders, file lists.

Each source is an :class:`~torch.utils.data.IterableDataset` run in loader workers; it
yields one dict per track: ``key``, ``audio`` float32 ``(T,)`` at the model's rate and
``label`` (encoded as :func:`~lit_mrl.data.datamodule.encode_labels` does), or ``key``,
``source`` and ``error`` for a track that cannot be used, so one bad file never stops
the run.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import soxr
from torch.utils.data import IterableDataset, get_worker_info

from lit_mrl.data.datamodule import encode_labels
from lit_mrl.data.shards import AUDIO_EXTENSIONS, INFO_NAME, decode_audio, iter_shard, read_info
from lit_mrl.data.shards import shard_paths as list_shards


def _worker_slice() -> tuple[int, int]:
    info = get_worker_info()
    return (0, 1) if info is None else (info.id, info.num_workers)


def _check_length(audio: np.ndarray, min_samples: int) -> None:
    if len(audio) < min_samples:
        raise ValueError(f"audio has {len(audio)} samples, less than one frame ({min_samples})")


class ShardTracks(IterableDataset):
    """Decoded tracks of one split of a sharded dataset, divided among loader workers.

    Workers take whole shards when there are at least as many shards as workers, and
    every ``num_workers``-th sample otherwise.

    Args:
        paths: the split's shard files.
        sample_rate: the rate ``info.json`` declares, in Hz; samples at another are errors.
        task: ``info.json``'s task type, for :func:`encode_labels`.
        vocabulary: ``info.json``'s label names.
        min_samples: shortest usable track (one log-mel frame).
        skip: keys not to decode (already embedded).
    """

    def __init__(
        self,
        paths: list[str],
        sample_rate: int,
        task: str,
        vocabulary: list[str],
        min_samples: int,
        skip: set[str],
    ) -> None:
        self.paths, self.sample_rate, self.min_samples = paths, sample_rate, min_samples
        self.task, self.vocabulary, self.skip = task, vocabulary, skip

    def __iter__(self) -> Iterator[dict[str, Any]]:
        worker, num_workers = _worker_slice()
        by_shard = len(self.paths) >= num_workers
        position = 0
        for shard_index, path in enumerate(self.paths):
            if by_shard and shard_index % num_workers != worker:
                continue
            try:
                for sample in iter_shard(path):
                    mine = by_shard or position % num_workers == worker
                    position += 1
                    if mine and sample["key"] not in self.skip:
                        yield self._decode(path, sample)
            except ValueError as err:  # an unreadable shard: report it, go on with the next
                if by_shard or worker == 0:
                    yield {"key": None, "source": path, "error": str(err)}

    def _decode(self, path: str, sample: dict[str, Any]) -> dict[str, Any]:
        key = sample["key"]
        try:
            audio, rate = decode_audio(sample["flac"])
            if rate != self.sample_rate:
                raise ValueError(f"decoded at {rate} Hz, info.json says {self.sample_rate} Hz")
            _check_length(audio, self.min_samples)
            meta = {"key": key, **sample["json"]}
            label = encode_labels(meta, self.task, self.vocabulary).numpy()
        except ValueError as err:
            return {"key": key, "source": path, "error": str(err)}
        except KeyError as err:
            return {"key": key, "source": path, "error": f"metadata lacks field {err}"}
        return {"key": key, "audio": audio, "label": label}


class FileTracks(IterableDataset):
    """Audio files decoded to mono and resampled (soxr, high quality) to ``sample_rate``.

    Args:
        files: ``(key, path)`` pairs; worker ``i`` of ``n`` takes every ``n``-th.
        sample_rate: target rate in Hz.
        min_samples: shortest usable track (one log-mel frame).
    """

    def __init__(self, files: list[tuple[str, Path]], sample_rate: int, min_samples: int) -> None:
        self.files, self.sample_rate, self.min_samples = files, sample_rate, min_samples

    def __iter__(self) -> Iterator[dict[str, Any]]:
        worker, num_workers = _worker_slice()
        for key, path in self.files[worker::num_workers]:
            try:
                audio, rate = decode_audio(path.read_bytes())
                if rate != self.sample_rate:
                    audio = soxr.resample(audio, rate, self.sample_rate, quality="HQ")
                _check_length(audio, self.min_samples)
            except (ValueError, OSError) as err:
                yield {"key": key, "source": str(path), "error": str(err)}
                continue
            yield {"key": key, "audio": np.asarray(audio, dtype=np.float32), "label": np.zeros(0)}


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
            SystemExit: naming both rates.
        """
        if self.sample_rate not in (None, sample_rate):
            raise SystemExit(
                f"the shards at {self.path} are at {self.sample_rate} Hz but the model expects "
                f"{sample_rate} Hz: reshard at {sample_rate} Hz (python -m data_prep.shard "
                f"--sample-rate {sample_rate})"
            )

    def tracks(
        self, split: str, sample_rate: int, min_samples: int, skip: set[str]
    ) -> IterableDataset:
        """The split's tracks not in ``skip``, decoded at ``sample_rate``."""
        self.check_sample_rate(sample_rate)
        if self.kind == "files":
            todo = [(key, path) for key, path in self.files if key not in skip]
            return FileTracks(todo, sample_rate, min_samples)
        paths = list_shards(self.path, split)
        return ShardTracks(paths, sample_rate, self.task, self.vocabulary, min_samples, skip)


def open_input(path: str | Path, file_split: str = "all") -> EmbeddingInput:
    """Describe ``--input``: a shard folder, an audio folder or a list of audio files.

    A folder with ``info.json`` is a sharded dataset. Any other folder is searched
    recursively for audio; keys are paths relative to it. A text file lists audio
    paths, one a line, relative to the list's folder; keys are the lines as written.

    Raises:
        SystemExit: ``path`` does not exist or holds no audio.
    """
    path = Path(path).resolve()
    if (path / INFO_NAME).is_file():
        info = read_info(path)
        sizes = {name: split.num_samples for name, split in info.splits.items()}
        return EmbeddingInput(
            path, "shards", info.task, list(info.vocabulary), sizes, info.sample_rate
        )
    if path.is_dir():
        found = sorted(p for p in path.rglob("*") if p.suffix.lower() in AUDIO_EXTENSIONS)
        files = [(p.relative_to(path).as_posix(), p) for p in found if p.is_file()]
    elif path.is_file():
        lines = [line.strip() for line in path.read_text().splitlines()]
        files = [(line, path.parent / line) for line in lines if line and not line.startswith("#")]
    else:
        raise SystemExit(f"--input {path} does not exist")
    if not files:
        raise SystemExit(f"no audio files ({', '.join(AUDIO_EXTENSIONS)}) found in {path}")
    return EmbeddingInput(path, "files", "none", [], {file_split: len(files)}, None, files)
