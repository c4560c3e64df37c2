"""ShardDataModule: WebDataset shards to batches of crops for Lightning.

Training streams are resampled (shards drawn with replacement) and cut with
``with_epoch`` so that every DDP rank yields the same number of batches; evaluation
streams read each sample once per rank, in shard order, split by worker.
"""

import itertools
import math
import os
from collections.abc import Callable, Iterator
from typing import Any

import lightning as L
import torch
import webdataset as wds

from lit_mrl.data.labels import Task
from lit_mrl.data.seeds import ResampledShards, SeededShuffle, StreamSeed
from lit_mrl.data.stream import CropSample, ShardSamples
from lit_mrl.errors import UsageError
from lit_mrl.formats.info import read_info, shard_paths


def clips_in_batch(batch: dict[str, Any]) -> int:
    """Clips in a batch, every view counted (for Lightning's ``ThroughputMonitor``)."""
    audio = batch["audio"]  # (B, V, T)
    return int(audio.shape[0] * audio.shape[1])


def collate(samples: list[dict[str, Any]]) -> dict[str, Any]:
    """Stack samples into a batch dict: ``audio`` ``(B, V, T)``, ``labels``, ``key``."""
    return {
        "audio": torch.stack([s["audio"] for s in samples]),
        "labels": torch.stack([s["labels"] for s in samples]),
        "key": [s["key"] for s in samples],
    }


class TrainLoader(wds.WebLoader):
    """The training loader: ``batches_per_epoch`` batches per epoch, seeded per epoch.

    It has a length, so Lightning knows the steps per epoch (progress bars show a total
    and the LR schedule's horizon is the real run); before each epoch's workers start,
    the stream's seed learns the epoch number (see :mod:`lit_mrl.data.seeds`).

    Args:
        pipeline: the training pipeline (yields batches).
        seed: the pipeline's :class:`StreamSeed`.
        batches_per_epoch: batches per epoch and per device.
        current_epoch: returns the epoch about to start.
        num_workers: loader processes.
    """

    def __init__(
        self,
        pipeline: wds.DataPipeline,
        seed: StreamSeed,
        batches_per_epoch: int,
        current_epoch: Callable[[], int],
        num_workers: int,
    ) -> None:
        super().__init__(pipeline, batch_size=None, num_workers=num_workers)
        self.seed = seed
        self.current_epoch = current_epoch
        # with_epoch after batching counts batches: equal on every rank, so DDP never hangs.
        self.with_epoch(batches_per_epoch)

    def __len__(self) -> int:
        return self.nsamples

    def __iter__(self) -> Iterator[dict[str, Any]]:
        # A generator: nothing runs until the first batch is asked for. Lightning makes the
        # first epoch's iterator before a resumed run has restored its epoch counter.
        self.seed.epoch = self.current_epoch()
        yield from super().__iter__()


class ShardDataModule(L.LightningDataModule):
    """Batches of audio crops from a sharded dataset (see :mod:`lit_mrl.formats.shards`).

    Batches are dicts: ``audio`` ``(B, num_views, clip_samples)`` float32 in [-1, 1],
    ``labels`` (multi-hot ``(B, K)``, class indices ``(B,)`` or values ``(B, K)``
    according to the dataset's task) and ``key`` (list of sample keys).

    Args:
        root: folder holding the shards and ``info.json`` (required; ``--data.root``).
        batch_size: clips (or clip pairs) per batch and per device.
        num_workers: loader processes per device.
        clip_seconds: crop length in seconds.
        num_views: crops per track: 1, or 2 for contrastive positives.
        max_offset_seconds: largest distance between the centres of two views.
        shuffle_buffer: samples held in the training shuffle buffer.
        steps_per_epoch: training batches per epoch and per device; default: one pass
            over the training split's sample count at the global batch size.
        train_split: split used for training.
        val_split: split used for validation (skipped when absent).
        test_split: split used for testing.
        seed: seed of the training stream (shards drawn, shuffle, crops); default: the
            global seed of ``seed_everything`` (``PL_GLOBAL_SEED``), else 0.
    """

    def __init__(
        self,
        root: str | None = None,
        batch_size: int = 32,
        num_workers: int = 2,
        clip_seconds: float = 3.0,
        num_views: int = 1,
        max_offset_seconds: float = 5.0,
        shuffle_buffer: int = 1000,
        steps_per_epoch: int | None = None,
        train_split: str = "train",
        val_split: str = "valid",
        test_split: str = "test",
        seed: int | None = None,
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        if root is None:
            raise UsageError(
                "data.root is not set: give --data.root SHARDS (a folder with info.json)"
            )
        self.info = read_info(root)
        self.seed = seed
        self.root = root
        self.batch_size = batch_size
        self.num_workers = num_workers
        self.num_views = num_views
        self.clip_samples = round(clip_seconds * self.info.sample_rate)
        self.max_offset = round(max_offset_seconds * self.info.sample_rate)
        self.shuffle_buffer = shuffle_buffer
        self.steps_per_epoch = steps_per_epoch
        self.splits = {"train": train_split, "val": val_split, "test": test_split}

    @property
    def sample_rate(self) -> int:
        """Sample rate of the shards in Hz."""
        return self.info.sample_rate

    @property
    def num_tags(self) -> int:
        """Size of the label vocabulary (outputs of a supervised head)."""
        return len(self.info.vocabulary)

    @property
    def task(self) -> Task:
        """The dataset's task type from ``info.json``."""
        return self.info.task

    def _rank_and_world(self) -> tuple[int, int]:
        if self.trainer is None:
            return 0, 1
        return self.trainer.global_rank, self.trainer.world_size

    def _transform(self, train: bool, seed: StreamSeed | None = None) -> CropSample:
        return CropSample(
            num_samples=self.clip_samples,
            num_views=self.num_views,
            max_offset=self.max_offset,
            task=self.info.task,
            vocabulary=self.info.vocabulary,
            sample_rate=self.info.sample_rate,
            train=train,
            seed=seed,
        )

    def _samples(self, split: str) -> ShardSamples:
        entry = self.info.splits[split]
        return ShardSamples(dict(zip(entry.shards, entry.shard_num_samples, strict=True)))

    def _stream_seed(self) -> StreamSeed:
        seed = self.seed
        if seed is None:
            seed = int(os.environ.get("PL_GLOBAL_SEED", 0))
        return StreamSeed(seed, rank=self._rank_and_world()[0])

    def _epoch_counter(self) -> Callable[[], int]:
        counter = itertools.count()  # without a trainer: each iteration is a new epoch
        if self.trainer is None:
            return lambda: next(counter)
        return lambda: self.trainer.current_epoch

    def train_batches_per_epoch(self) -> int:
        """Training batches per epoch and per device."""
        if self.steps_per_epoch is not None:
            return self.steps_per_epoch
        _, world = self._rank_and_world()
        num_samples = self.info.splits[self.splits["train"]].num_samples
        return max(1, math.ceil(num_samples / (self.batch_size * world)))

    def _loader(self, pipeline: wds.DataPipeline) -> wds.WebLoader:
        return wds.WebLoader(
            pipeline,
            batch_size=None,
            num_workers=self.num_workers,
            persistent_workers=False,
        )

    def train_dataloader(self) -> TrainLoader:
        seed = self._stream_seed()
        pipeline = wds.DataPipeline(
            ResampledShards(shard_paths(self.root, self.splits["train"]), seed),
            self._samples(self.splits["train"]),
            SeededShuffle(self.shuffle_buffer, seed),
            self._transform(train=True, seed=seed),
            wds.batched(self.batch_size, collation_fn=collate, partial=False),
        )
        return TrainLoader(
            pipeline, seed, self.train_batches_per_epoch(), self._epoch_counter(), self.num_workers
        )

    def _eval_dataloader(self, stage: str) -> wds.WebLoader:
        # Every rank reads the whole split (no split_by_node): under DDP each validation
        # step is a collective (DDP broadcasts buffers in forward, TaskScore gathers), so
        # ranks with unequal batch counts, or none (fewer shards than ranks), crash or hang.
        # Duplicated rows leave the gathered ROC-AUC, AP and mean loss unchanged.
        pipeline = wds.DataPipeline(
            wds.SimpleShardList(shard_paths(self.root, self.splits[stage])),
            wds.split_by_worker,
            self._samples(self.splits[stage]),
            self._transform(train=False),
            wds.batched(self.batch_size, collation_fn=collate, partial=True),
        )
        return self._loader(pipeline)

    def val_dataloader(self) -> wds.WebLoader | list:
        if self.splits["val"] not in self.info.splits:
            return []
        return self._eval_dataloader("val")

    def test_dataloader(self) -> wds.WebLoader:
        return self._eval_dataloader("test")
