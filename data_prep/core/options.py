"""How to shard: :class:`ShardOptions`, one field per flag of ``python -m data_prep.shard``.

The command line builds one from its flags, and every dataset adapter builds one from
its own, then hands it to :func:`data_prep.core.sharder.shard_rows` with its input rows;
nobody passes argv strings or Namespaces to the sharder.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

from data_prep.core.flags import default_workers
from lit_mrl.errors import UsageError
from lit_mrl.formats.info import TASKS, Task


@dataclass(frozen=True)
class ShardOptions:
    """The sharder's settings.

    Args:
        out: output folder (one dataset per folder).
        dataset: shard name prefix; None: the name of ``out``.
        sample_rate: target rate in Hz (one soxr "HQ" resample).
        task: ``multilabel``, ``multiclass``, ``regression`` or ``none``; None: inferred
            (multilabel when any row has labels, else none).
        vocabulary: label names in class order (regression: target names); None: the
            labels seen, sorted, or for regression ``target`` / ``target_0`` ...
        vocabulary_source: what the vocabulary came from, for messages
            (``unknown label 'x' (not in vocab.txt)``).
        workers: decoding processes; 0 decodes in this one.
        max_shard_mb: shard size bound in MB.
        max_shard_samples: also bound the samples per shard.
        max_seconds: keep only the first ``max_seconds`` seconds of each track.
        num_partitions: process one of this many partitions of the inputs ...
        partition_index: ... this one (inputs ``i % num_partitions == partition_index``).
        overwrite: delete this dataset's shards, info and errors in ``out`` first.
    """

    out: Path
    dataset: str | None = None
    sample_rate: int = 16000
    task: Task | None = None
    vocabulary: tuple[str, ...] | None = None
    vocabulary_source: str = "the vocabulary given"
    workers: int = field(default_factory=default_workers)
    max_shard_mb: float = 500.0
    max_shard_samples: int | None = None
    max_seconds: float | None = None
    num_partitions: int = 1
    partition_index: int = 0
    overwrite: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "out", Path(self.out))
        if self.vocabulary is not None:
            object.__setattr__(self, "vocabulary", tuple(self.vocabulary))
        if self.task is not None and self.task not in TASKS:
            raise UsageError(f"task must be one of {', '.join(TASKS)}, got {self.task!r}")
        for name, low in (("sample_rate", 1), ("workers", 0), ("num_partitions", 1),
                          ("partition_index", 0), ("max_shard_samples", 1)):  # fmt: skip
            value = getattr(self, name)
            if value is not None and (not isinstance(value, int) or value < low):
                raise UsageError(f"{name} must be an integer of at least {low}, got {value!r}")
        for name in ("max_shard_mb", "max_seconds"):
            value = getattr(self, name)
            if value is not None and not (math.isfinite(value) and value > 0):
                raise UsageError(f"{name} must be a positive number, got {value!r}")
        if self.partition_index >= self.num_partitions:
            raise UsageError("partition_index must be less than num_partitions")

    @property
    def dataset_name(self) -> str:
        """``dataset``, or the name of ``out``."""
        return self.dataset or self.out.resolve().name

    @property
    def partition(self) -> int | None:
        """This run's partition, or None for an unpartitioned run."""
        return self.partition_index if self.num_partitions > 1 else None
