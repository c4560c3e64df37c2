"""Cached embeddings (see :mod:`lit_mrl.formats.embeddings`) as batches for probes.

A thin Lightning wrapper of :class:`~lit_mrl.probe.data.ProbeData` (the tensors, their
standardisation and checks). Batches are dicts: ``embedding`` ``(B, D)`` float32 and
``labels`` (``(B, K)`` float multi-hot or values, or ``(B,)`` int64 class indices, per
the folder's task). Only track embeddings and labels are read (never the timelines), so
memory is about N x D.
"""

from pathlib import Path

import lightning as L
import numpy as np
import torch
from torch import Tensor
from torch.utils.data import DataLoader, Sampler

from lit_mrl.formats.embeddings import EmbeddingIndex, append_part, read_index
from lit_mrl.probe.data import (
    EmbeddingTensors,
    ProbeData,
    ShuffledBatches,
    check_learnable,
    labels_tensor,
)

# re-exported: tests and benchmarks import them from here
__all__ = [
    "EmbeddingDataModule", "EmbeddingTensors", "ShuffledBatches", "check_learnable",
    "labels_tensor", "write_arrays",
]  # fmt: skip


class EmbeddingDataModule(L.LightningDataModule):
    """Train / val / test batches from an embeddings folder written by ``lit_mrl embed``.

    The folder's index is read here; the embeddings on first use, as a
    :class:`~lit_mrl.probe.data.ProbeData` (:attr:`probe_data`).

    Args:
        root: embeddings folder holding ``index.json`` and the split parts.
        batch_size: embeddings per batch.
        seed: seed of the training order (see :class:`~lit_mrl.probe.data.ShuffledBatches`).
        num_workers: loader processes (0 is fastest for in-memory embeddings).
        train_split: split used for training.
        val_split: split used for validation (skipped when absent).
        test_split: split used for testing.
        standardize: z-score embeddings with the training split's statistics (see
            :class:`~lit_mrl.probe.data.ProbeData`).
        standardize_targets: z-score regression targets likewise; predictions are mapped
            back before they are scored.
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
        self._data: ProbeData | None = None

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

    @property
    def probe_data(self) -> ProbeData:
        """The folder's splits as tensors (read and checked on first use).

        Raises:
            UsageError: no training split, or nothing to learn from it.
        """
        if self._data is None:
            self._data = ProbeData.from_folder(
                self.root, self.splits["train"], self.splits["val"], self.splits["test"],
                self.hparams.standardize, self.hparams.standardize_targets, index=self.index,
            )  # fmt: skip
        return self._data

    def load(self, stage: str) -> EmbeddingTensors:
        """The in-memory embeddings of ``stage`` (``train``, ``val`` or ``test``).

        Raises:
            UsageError: the split has no embeddings, or (training) nothing to learn.
        """
        return self.probe_data.split(stage)

    def to_original_units(self, preds: Tensor) -> Tensor:
        """Map regression predictions on standardised targets back to the data's units."""
        return self.probe_data.to_original_units(preds)

    def original_labels(self, stage: str) -> Tensor:
        """The labels of ``stage`` in the data's own units (for scoring)."""
        return self.probe_data.original_labels(stage)

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
