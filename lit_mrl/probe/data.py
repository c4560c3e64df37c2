"""ProbeData: one probe task's splits as tensors (torch only, no Lightning).

What the probe search, the ensembles and the intervals read: the train / val / test
embeddings and labels in memory, standardised with the training split's statistics,
the task type and the vocabulary, and the conversion of regression predictions back to
the data's units. :class:`~lit_mrl.data.EmbeddingDataModule` wraps it for Lightning.
Embeddings come from a folder written by ``python -m lit_mrl embed`` through
:mod:`lit_mrl.formats.embeddings`, which checks the index, the digests and finiteness.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Dataset, Sampler

from lit_mrl.errors import UsageError
from lit_mrl.formats.embeddings import EmbeddingIndex, load_split, read_index

STAGES = ("train", "val", "test")


def labels_tensor(labels: np.ndarray, task: str) -> Tensor:
    """Stored labels as training targets: int64 class indices (multiclass) or float32."""
    return torch.from_numpy(labels.astype(np.int64 if task == "multiclass" else np.float32))


class EmbeddingTensors(Dataset):
    """Embeddings and labels held in memory, indexed by a whole batch of indices at once.

    Args:
        embeddings: ``(N, D)`` float32.
        labels: ``(N, K)`` or ``(N,)`` targets.
    """

    def __init__(self, embeddings: Tensor, labels: Tensor) -> None:
        self.embeddings = embeddings
        self.labels = labels

    def __len__(self) -> int:
        return len(self.embeddings)

    def __getitem__(self, index: Tensor) -> dict[str, Tensor]:
        return {"embedding": self.embeddings[index], "labels": self.labels[index]}


class ShuffledBatches(Sampler[Tensor]):
    """Index batches of a new permutation every epoch, the last batch possibly short.

    Epoch ``e`` uses the ``e``-th ``torch.randperm(num_samples, generator)`` of a generator
    seeded with ``seed``: the probe search draws its minibatches from this same class, so
    one probe trained through Lightning sees the data in the same order.

    Args:
        num_samples: dataset size N.
        batch_size: indices per batch.
        seed: seed of the permutations.
    """

    def __init__(self, num_samples: int, batch_size: int, seed: int) -> None:
        self.num_samples = num_samples
        self.batch_size = batch_size
        self.generator = torch.Generator().manual_seed(seed)

    def __len__(self) -> int:
        return math.ceil(self.num_samples / self.batch_size)

    def __iter__(self) -> Iterator[Tensor]:
        order = torch.randperm(self.num_samples, generator=self.generator)
        yield from order.split(self.batch_size)


def check_learnable(labels: Tensor, task: str, vocabulary: list[str], where: str) -> None:
    """Refuse training labels a probe cannot learn from, naming the reason.

    Raises:
        UsageError: no items, a single class, no tag that is ever positive (and negative),
            or constant regression targets.
    """
    if len(labels) == 0:
        raise UsageError(f"{where}: the training split is empty")
    if task == "multiclass":
        present = torch.unique(labels)
        if len(present) < 2:
            name = vocabulary[int(present[0])] if len(vocabulary) > int(present[0]) else present
            raise UsageError(
                f"{where}: every training item has the class {name!r}; a probe needs at "
                "least two classes"
            )
    elif task == "multilabel":
        positives = labels.sum(0)
        if not ((positives > 0) & (positives < len(labels))).any():
            raise UsageError(f"{where}: no tag is both present and absent in the training split")
    elif task == "regression" and bool((labels.std(0) == 0).all()):
        raise UsageError(f"{where}: every regression target is constant in the training split")


def stage_splits(
    train_split: str = "train", val_split: str = "valid", test_split: str = "test"
) -> dict[str, str]:
    """The stored split name of each stage (the defaults every probe entry point uses)."""
    return {"train": train_split, "val": val_split, "test": test_split}


def _std_mean(values: Tensor) -> tuple[Tensor, Tensor]:
    """Per-dimension mean and std, the std at least 1e-6 (constant dimensions stay 0)."""
    std, mean = torch.std_mean(values.float(), dim=0)
    return mean, std.clamp_min(1e-6)


class ProbeData:
    """The splits of one probe task as tensors, standardised with training statistics.

    Args:
        splits: raw ``EmbeddingTensors`` per stage (``train`` required; ``val``, ``test``
            optional), labels as :func:`labels_tensor` makes them.
        task: ``multilabel``, ``multiclass`` or ``regression``.
        vocabulary: label (or regression output) names in class-index order.
        standardize: z-score every embedding dimension with the training split's mean
            and std (applied to all splits). Encoders without batch norm can emit
            embeddings whose dimensions differ by orders of magnitude in scale, which a
            fixed probe learning rate cannot follow; the affine map changes nothing a
            probe can express.
        standardize_targets: z-score regression targets with the training split's mean
            and std, so the loss and learning rate fit any unit (BPM, valence on 1-9);
            :meth:`to_original_units` maps predictions back before they are scored.
        name: where the data comes from, for messages.
        split_names: the stored split name of each stage, for messages.

    Raises:
        UsageError: training labels a probe cannot learn from (:func:`check_learnable`).
    """

    def __init__(
        self,
        splits: dict[str, EmbeddingTensors],
        task: str,
        vocabulary: list[str],
        standardize: bool = True,
        standardize_targets: bool = True,
        name: str = "embeddings",
        split_names: dict[str, str] | None = None,
    ) -> None:
        self.task = task
        self.vocabulary = list(vocabulary)
        self.name = name
        self.split_names = {**dict(zip(STAGES, STAGES, strict=True)), **(split_names or {})}
        self.standardize = standardize
        self.standardize_targets = standardize_targets and task == "regression"
        train = splits["train"]
        check_learnable(
            train.labels, task, self.vocabulary, f"{name} ({self.split_names['train']})"
        )
        self.embed_dim = train.embeddings.shape[1]
        self.embedding_stats = _std_mean(train.embeddings) if standardize else None
        self.target_stats = _std_mean(train.labels) if self.standardize_targets else None
        self.splits = {stage: self._standardised(split) for stage, split in splits.items()}

    def _standardised(self, split: EmbeddingTensors) -> EmbeddingTensors:
        embeddings, labels = split.embeddings, split.labels
        if self.embedding_stats is not None:
            mean, std = self.embedding_stats
            embeddings = (embeddings - mean) / std
        if self.target_stats is not None:
            mean, std = self.target_stats
            labels = (labels - mean) / std
        return EmbeddingTensors(embeddings, labels)

    @classmethod
    def from_folder(
        cls,
        root: str | Path,
        train_split: str = "train",
        val_split: str = "valid",
        test_split: str = "test",
        standardize: bool = True,
        standardize_targets: bool = True,
        index: EmbeddingIndex | None = None,
    ) -> ProbeData:
        """The splits an embeddings folder holds (see :mod:`lit_mrl.formats.embeddings`).

        Only the listed parts are read, each checked against its digests; ``val`` and
        ``test`` may be absent (:meth:`split` then names the missing split).

        Raises:
            UsageError: no training split, or training labels a probe cannot learn from.
        """
        index = index if index is not None else read_index(root)
        names = stage_splits(train_split, val_split, test_split)
        splits = {}
        for stage, split in names.items():
            entry = index.splits.get(split)
            if entry is None or not entry.parts:
                if stage == "train":
                    raise UsageError(
                        f"{root} has no embeddings of split {split!r} (the train split)"
                    )
                continue
            data = load_split(root, split, index=index)
            embeddings = torch.from_numpy(data.embeddings)
            splits[stage] = EmbeddingTensors(embeddings, labels_tensor(data.labels, index.task))
        return cls(
            splits, index.task, list(index.vocabulary), standardize, standardize_targets,
            name=str(root), split_names=names,
        )  # fmt: skip

    def has(self, stage: str) -> bool:
        """Whether the data holds the ``stage`` split."""
        return stage in self.splits

    def split(self, stage: str) -> EmbeddingTensors:
        """The (standardised) embeddings and labels of ``stage``: ``train``, ``val``, ``test``.

        Raises:
            UsageError: the split is absent.
        """
        if stage not in self.splits:
            raise UsageError(
                f"{self.name} has no embeddings of split {self.split_names[stage]!r} "
                f"(the {stage} split)"
            )
        return self.splits[stage]

    def to_original_units(self, preds: Tensor) -> Tensor:
        """Map regression predictions on standardised targets back to the data's units."""
        if self.target_stats is None:
            return preds
        mean, std = self.target_stats
        return preds * std.to(preds.device) + mean.to(preds.device)

    def original_labels(self, stage: str) -> Tensor:
        """The labels of ``stage`` in the data's own units (for scoring)."""
        return self.to_original_units(self.split(stage).labels)
