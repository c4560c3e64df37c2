"""ShardDataModule: WebDataset shards to batches of crops for Lightning.

Training streams are resampled (shards drawn with replacement) and cut with
``with_epoch`` so that every DDP rank yields the same number of batches; evaluation
streams read each sample once, in shard order, split by node and worker.
"""

import itertools
import json
import math
import os
import warnings
import zlib
from collections.abc import Callable, Iterator
from typing import Any, Literal

import lightning as L
import numpy as np
import soundfile as sf
import torch
import webdataset as wds
from torch import Tensor

from lit_mrl.data.crops import center_crop, paired_crops, random_crop
from lit_mrl.data.seeds import ResampledShards, SeededShuffle, StreamSeed
from lit_mrl.data.shards import decode_audio, read_info, shard_paths

Task = Literal["multilabel", "multiclass", "regression", "none"]


def skip_corrupt(exn: Exception) -> bool:
    """WebDataset handler: warn and skip undecodable samples, re-raise code errors.

    Bad audio (``ValueError`` from decoding or label checks, libsndfile errors, broken
    tar members) skips one sample; anything else (``KeyError``, ``TypeError``, ...)
    is a bug or a config error and stops the run.
    """
    if isinstance(exn, (ValueError, sf.LibsndfileError, OSError)):
        warnings.warn(f"skipping a bad sample: {exn!r}", stacklevel=2)
        return True
    raise exn


def encode_labels(meta: dict, task: Task, vocabulary: list[str]) -> Tensor:
    """Turn a sample's ``labels``/``targets`` into a training target.

    Args:
        meta: the sample's JSON metadata.
        task: the dataset's task type.
        vocabulary: label names (or regression output names) from ``info.json``.

    Returns:
        ``(K,)`` float multi-hot (multilabel), ``()`` long class index (multiclass),
        ``(K,)`` float values (regression) or ``(0,)`` (none).

    Raises:
        ValueError: a label is not in the vocabulary or a multiclass sample does not
            have exactly one label.
    """
    if task == "regression":
        return torch.tensor(meta["targets"], dtype=torch.float32)
    if task == "none":
        return torch.zeros(0)
    index = {name: i for i, name in enumerate(vocabulary)}
    unknown = [lab for lab in meta["labels"] if lab not in index]
    if unknown:
        raise ValueError(f"sample {meta.get('key')!r}: labels {unknown} not in the vocabulary")
    if task == "multiclass":
        if len(meta["labels"]) != 1:
            raise ValueError(
                f"sample {meta.get('key')!r}: multiclass needs one label, got {meta['labels']}"
            )
        return torch.tensor(index[meta["labels"][0]])
    hot = torch.zeros(len(vocabulary))
    hot[[index[lab] for lab in meta["labels"]]] = 1.0
    return hot


class CropSample:
    """Decode one raw WebDataset sample and crop it into ``num_views`` clips.

    A picklable callable (it travels to loader workers). Training draws random crops;
    evaluation takes the centre crop, or for two views a pair drawn from an RNG seeded
    by the sample key, so validation is deterministic.

    Args:
        num_samples: crop length in samples.
        num_views: crops per track (1, or 2 for contrastive pairs).
        max_offset: largest distance between two crop centres, in samples.
        task: the dataset's task type.
        vocabulary: label names from ``info.json``.
        train: random (True) or deterministic (False) crops.
        seed: seeds the random crops (training only).
    """

    def __init__(
        self,
        num_samples: int,
        num_views: int,
        max_offset: int,
        task: Task,
        vocabulary: list[str],
        train: bool,
        seed: StreamSeed | None = None,
    ) -> None:
        self.num_samples = num_samples
        self.num_views = num_views
        self.max_offset = max_offset
        self.task = task
        self.vocabulary = vocabulary
        self.train = train
        self.seed = seed if seed is not None else StreamSeed(0)
        self._rng: np.random.Generator | None = None
        self._rng_epoch = -1

    def _crops(self, audio: np.ndarray, key: str) -> list[np.ndarray]:
        if self.train:
            if self._rng is None or self._rng_epoch != self.seed.epoch:
                # made inside the worker that uses it, anew each epoch
                self._rng = np.random.default_rng(self.seed("crops"))
                self._rng_epoch = self.seed.epoch
            rng = self._rng
        elif self.num_views == 1:
            return [center_crop(audio, self.num_samples)]
        else:
            rng = np.random.default_rng(zlib.crc32(key.encode()))
        if self.num_views == 1:
            return [random_crop(audio, self.num_samples, rng)]
        if self.num_views == 2:
            return list(paired_crops(audio, self.num_samples, self.max_offset, rng))
        return [random_crop(audio, self.num_samples, rng) for _ in range(self.num_views)]

    def __call__(self, sample: dict[str, Any]) -> dict[str, Any]:
        missing = {"flac", "json"} - sample.keys()
        if missing:  # only these two members are ever read: no pickle, no code
            raise ValueError(
                f"sample {sample['__key__']!r} in {sample.get('__url__')} lacks {sorted(missing)}"
            )
        meta = json.loads(sample["json"])
        audio, _ = decode_audio(sample["flac"])
        views = np.stack(self._crops(audio, sample["__key__"]))  # (V, num_samples)
        return {
            "audio": torch.from_numpy(np.ascontiguousarray(views, dtype=np.float32)),
            "labels": encode_labels(meta, self.task, self.vocabulary),
            "key": sample["__key__"],
        }


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
    """Batches of audio crops from a sharded dataset (see :mod:`lit_mrl.data.shards`).

    Batches are dicts: ``audio`` ``(B, num_views, clip_samples)`` float32 in [-1, 1],
    ``labels`` (multi-hot ``(B, K)``, class indices ``(B,)`` or values ``(B, K)``
    according to the dataset's task) and ``key`` (list of sample keys).

    Args:
        root: folder holding the shards and ``info.json``.
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
        root: str,
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
            train=train,
            seed=seed,
        )

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
            wds.tarfile_to_samples(handler=skip_corrupt),
            SeededShuffle(self.shuffle_buffer, seed),
            wds.map(self._transform(train=True, seed=seed), handler=skip_corrupt),
            wds.batched(self.batch_size, collation_fn=collate, partial=False),
        )
        return TrainLoader(
            pipeline, seed, self.train_batches_per_epoch(), self._epoch_counter(), self.num_workers
        )

    def _eval_dataloader(self, stage: str) -> wds.WebLoader:
        pipeline = wds.DataPipeline(
            wds.SimpleShardList(shard_paths(self.root, self.splits[stage])),
            wds.split_by_node,
            wds.split_by_worker,
            wds.tarfile_to_samples(handler=skip_corrupt),
            wds.map(self._transform(train=False), handler=skip_corrupt),
            wds.batched(self.batch_size, collation_fn=collate, partial=True),
        )
        return self._loader(pipeline)

    def val_dataloader(self) -> wds.WebLoader | list:
        if self.splits["val"] not in self.info.splits:
            return []
        return self._eval_dataloader("val")

    def test_dataloader(self) -> wds.WebLoader:
        return self._eval_dataloader("test")
