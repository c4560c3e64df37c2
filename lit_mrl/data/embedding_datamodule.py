"""Cached embeddings (see :mod:`lit_mrl.formats.embeddings`) as batches for probes.

Batches are dicts: ``embedding`` ``(B, D)`` float32 and ``labels`` (``(B, K)`` float
multi-hot or values, or ``(B,)`` int64 class indices, per the folder's task). Only track
embeddings and labels are read (never the timelines), so memory is about N x D.
"""

import math
from collections.abc import Iterator
from pathlib import Path

import lightning as L
import numpy as np
import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset, Sampler

from lit_mrl.errors import UsageError
from lit_mrl.formats.embeddings import EmbeddingIndex, append_part, load_split, read_index


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
    seeded with ``seed``: the probe search draws its shared minibatches from this same
    class, so one probe trained through Lightning sees the data in the same order.

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


class EmbeddingDataModule(L.LightningDataModule):
    """Train / val / test batches from an embeddings folder written by ``lit_mrl embed``.

    Args:
        root: embeddings folder holding ``index.json`` and the split parts.
        batch_size: embeddings per batch.
        seed: seed of the training order (see :class:`ShuffledBatches`).
        num_workers: loader processes (0 is fastest for in-memory embeddings).
        train_split: split used for training.
        val_split: split used for validation (skipped when absent).
        test_split: split used for testing.
        standardize: z-score every embedding dimension with the training split's mean
            and std (applied to all splits). Encoders without batch norm can emit
            embeddings whose dimensions differ by orders of magnitude in scale, which a
            fixed probe learning rate cannot follow; the affine map changes nothing a
            probe can express.
        standardize_targets: z-score regression targets with the training split's mean
            and std, so the loss and learning rate fit any unit (BPM, valence on 1-9);
            :meth:`to_original_units` maps predictions back before they are scored.
    """

    def __init__(
        self,
        root: str,
        batch_size: int = 256,
        seed: int = 0,
        num_workers: int = 0,
        train_split: str = "train",
        val_split: str = "valid",
        test_split: str = "test",
        standardize: bool = True,
        standardize_targets: bool = True,
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.root = Path(root)
        self.index: EmbeddingIndex = read_index(root)
        self.batch_size = batch_size
        self.seed = seed
        self.num_workers = num_workers
        self.splits = {"train": train_split, "val": val_split, "test": test_split}
        self.standardize = standardize
        self.standardize_targets = standardize_targets and self.task == "regression"
        self.datasets: dict[str, EmbeddingTensors] = {}
        self._stats: tuple[Tensor, Tensor] | None = None
        self._target_stats: tuple[Tensor, Tensor] | None = None

    @property
    def embed_dim(self) -> int:
        """Embedding size D."""
        return self.index.embed_dim

    @property
    def task(self) -> str:
        """The folder's task type: ``multilabel``, ``multiclass`` or ``regression``."""
        return self.index.task

    @property
    def vocabulary(self) -> list[str]:
        """Label (or regression output) names in class-index order."""
        return list(self.index.vocabulary)

    def load(self, stage: str) -> EmbeddingTensors:
        """The in-memory embeddings of ``stage`` (``train``, ``val`` or ``test``).

        Raises:
            UsageError: the split has no embeddings, or (training) nothing to learn.
        """
        if stage not in self.datasets:
            split = self.splits[stage]
            if not self.has_split(stage):
                raise UsageError(
                    f"{self.root} has no embeddings of split {split!r} (the {stage} split)"
                )
            data = load_split(self.root, split, index=self.index)
            embeddings = torch.from_numpy(data.embeddings)
            labels = labels_tensor(data.labels, self.task)
            if stage == "train":
                check_learnable(labels, self.task, self.vocabulary, f"{self.root} ({split})")
            if self.standardize:
                mean, std = self._train_stats("embeddings")
                embeddings = (embeddings - mean) / std
            if self.standardize_targets:
                mean, std = self._train_stats("targets")
                labels = (labels - mean) / std
            self.datasets[stage] = EmbeddingTensors(embeddings, labels)
        return self.datasets[stage]

    def to_original_units(self, preds: Tensor) -> Tensor:
        """Map regression predictions on standardised targets back to the data's units."""
        if not self.standardize_targets:
            return preds
        mean, std = self._train_stats("targets")
        return preds * std.to(preds.device) + mean.to(preds.device)

    def original_labels(self, stage: str) -> Tensor:
        """The labels of ``stage`` in the data's own units (for scoring)."""
        return self.to_original_units(self.load(stage).labels)

    def _train_stats(self, what: str) -> tuple[Tensor, Tensor]:
        """Per-dimension mean and std of the training ``embeddings`` or ``targets``."""
        cached = self._stats if what == "embeddings" else self._target_stats
        if cached is None:
            train = load_split(self.root, self.splits["train"], index=self.index)
            values = train.embeddings if what == "embeddings" else train.labels
            std, mean = torch.std_mean(torch.from_numpy(values).float(), dim=0)
            cached = (mean, std.clamp_min(1e-6))  # constant dimensions stay 0
            if what == "embeddings":
                self._stats = cached
            else:
                self._target_stats = cached
        return cached

    def has_split(self, stage: str) -> bool:
        """Whether the folder's index lists parts of the split used for ``stage``."""
        split = self.index.splits.get(self.splits[stage])
        return split is not None and bool(split.parts)

    def _loader(self, dataset: EmbeddingTensors, sampler: Sampler[Tensor]) -> DataLoader:
        # batch_size=None: the sampler yields whole index batches, the dataset slices them.
        return DataLoader(dataset, batch_size=None, sampler=sampler, num_workers=self.num_workers)

    def train_dataloader(self) -> DataLoader:
        dataset = self.load("train")
        return self._loader(dataset, ShuffledBatches(len(dataset), self.batch_size, self.seed))

    def _eval_dataloader(self, stage: str) -> DataLoader:
        dataset = self.load(stage)
        batches = torch.arange(len(dataset)).split(self.batch_size)
        return self._loader(dataset, batches)

    def val_dataloader(self) -> DataLoader | list:
        return self._eval_dataloader("val") if self.has_split("val") else []

    def test_dataloader(self) -> DataLoader:
        return self._eval_dataloader("test")


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


def write_arrays(
    root: str | Path,
    split: str,
    embeddings: np.ndarray,
    labels: np.ndarray,
    keys: list[str] | None = None,
) -> Path:
    """Store precomputed track embeddings (made elsewhere, or synthetic) as one split part.

    Each track gets a one-window timeline equal to its embedding. The part is listed in
    ``index.json`` (:func:`lit_mrl.formats.embeddings.append_part`); complete the index's
    other fields with :func:`lit_mrl.formats.embeddings.write_index`, before or after.

    Args:
        root: embeddings folder.
        split: split name (``train``, ``valid``, ``test``).
        embeddings: ``(N, D)`` track embeddings.
        labels: ``(N, K)`` multi-hot or values, or ``(N,)`` class indices.
        keys: ``N`` track keys (default ``{split}-000000``, ...).

    Returns:
        The path of the written part.
    """
    embeddings = np.asarray(embeddings, dtype=np.float32)
    keys = keys if keys is not None else [f"{split}-{i:06d}" for i in range(len(embeddings))]
    rows = [
        {"key": key, "embedding": emb, "label": label, "timeline": emb[None], "timestamps": [0.0]}
        for key, emb, label in zip(keys, embeddings, labels, strict=True)
    ]
    return Path(root) / append_part(root, split, rows).name
