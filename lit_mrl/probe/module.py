"""ProbeModule: an MLP probe on frozen embeddings, the paper's downstream protocol.

McCallum et al., "Supervised and Unsupervised Learning of Audio Representations for
Music Understanding", ISMIR 2022 (https://arxiv.org/abs/2210.03799): frozen
embeddings go into a small MLP trained with Adam, a linear warm-up then cosine decay
to 0, L2 on the kernels and dropout after each hidden layer.
"""

from typing import Literal

import lightning as L
import torch
from torch import Tensor

from lit_mrl.checkpoints import load_pretrained
from lit_mrl.losses import l2_penalty, probe_loss
from lit_mrl.metrics import ProbeTask, TaskScore
from lit_mrl.models.audio_encoder import AudioEncoder
from lit_mrl.models.heads import MLPHead, seeded_mlp_head
from lit_mrl.probe.ensemble import ADAM_EPS
from lit_mrl.schedules import WarmupCosineLR

Task = ProbeTask


def data_labels(datamodule: L.LightningDataModule) -> tuple[str | None, list[str] | None]:
    """The task type and label names of one of lit_mrl's data modules (``None``: another)."""
    from lit_mrl.data import EmbeddingDataModule, ShardDataModule

    if isinstance(datamodule, EmbeddingDataModule):
        return datamodule.task, datamodule.vocabulary
    if isinstance(datamodule, ShardDataModule):
        return datamodule.info.task, list(datamodule.info.vocabulary)
    return None, None


class ProbeModule(L.LightningModule):
    """A probe on cached embeddings, or on a live frozen encoder loaded from a checkpoint.

    Batches are ``{"embedding": (B, D), "labels": ...}`` (from
    :class:`~lit_mrl.data.EmbeddingDataModule`) or, with ``checkpoint``,
    ``{"audio": (B, V, T), "labels": ...}`` (from :class:`~lit_mrl.data.ShardDataModule`);
    the first view is embedded under ``no_grad`` by the frozen encoder, which stays in
    eval mode even when the trainer calls ``train()``. Labels are ``(B, K)`` multi-hot
    (multilabel), ``(B,)`` class indices (multiclass) or ``(B, K)`` values (regression).

    Logs ``train/loss`` (including the L2 term) and ``{val,test}/loss`` plus the task's
    metrics (see :func:`~lit_mrl.metrics.score_predictions`) at each epoch end.

    Args:
        task: loss and metrics: BCE + ROC-AUC/AP, cross-entropy + accuracy, MSE + R².
        num_outputs: tags, classes or regression outputs K.
        in_dim: embedding size D; default: the encoder's ``embed_dim`` (with
            ``checkpoint``) or the datamodule's ``embed_dim`` at setup.
        hidden_dims: hidden ReLU layer widths (the paper: none, or 1-3 of 512-4096).
        dropout: drop probability after each hidden layer.
        weight_decay: L2 factor on the kernels, added to the loss Keras-style
            (``weight_decay * sum(W**2)``; see :func:`~lit_mrl.losses.l2_penalty`).
        lr: peak learning rate of Adam.
        warmup_steps: steps of linear warm-up.
        max_steps: warm-up plus cosine-decay steps; -1: the trainer's whole run.
        metric: ``"mirex_key"`` adds the MIREX weighted key score (24 key classes).
        class_names: label names in class-index order (key names for ``mirex_key``,
            output names for the per-output R² keys); default: the datamodule's
            vocabulary at setup (canonical key order / output numbers without one).
        checkpoint: a pre-training checkpoint whose encoder embeds ``batch["audio"]``.
        init_seed: seed of the head's initial weights (``None``: the global RNG).
    """

    def __init__(
        self,
        task: Task,
        num_outputs: int,
        in_dim: int | None = None,
        hidden_dims: list[int] = [],  # noqa: B006
        dropout: float = 0.5,
        weight_decay: float = 0.0,
        lr: float = 1e-4,
        warmup_steps: int = 1000,
        max_steps: int = -1,
        metric: Literal["default", "mirex_key"] = "default",
        class_names: list[str] | None = None,
        checkpoint: str | None = None,
        init_seed: int | None = None,
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.task = task
        self.num_outputs = num_outputs
        self.audio_encoder: AudioEncoder | None = None
        if checkpoint is not None:
            encoder = load_pretrained(checkpoint).audio_encoder
            self.audio_encoder = encoder.requires_grad_(False).eval()
            if in_dim is None:
                in_dim = self.audio_encoder.embed_dim
        self.head: MLPHead | None = None
        if in_dim is not None:
            self._build_head(in_dim)
        self._build_metrics()

    def _build_metrics(self) -> None:
        hp = self.hparams
        self.val_metrics = TaskScore(self.task, self.num_outputs, hp.metric, hp.class_names)
        self.test_metrics = TaskScore(self.task, self.num_outputs, hp.metric, hp.class_names)

    def _build_head(self, in_dim: int) -> None:
        hp = self.hparams
        self.hparams.in_dim = in_dim  # stored in checkpoints, so they reload without data
        self.head = seeded_mlp_head(
            in_dim, self.num_outputs, hp.hidden_dims, hp.dropout, hp.init_seed
        )

    def _check_data(self, datamodule: L.LightningDataModule) -> None:
        """Fail fast on a task or label mismatch; take the class names from the data."""
        task, names = data_labels(datamodule)
        if task is not None and task != self.task:
            raise ValueError(f"the data holds a {task} task but the probe has task={self.task}")
        if names is None:
            return
        if len(names) != self.num_outputs:
            raise ValueError(
                f"the data has {len(names)} labels but the probe has num_outputs={self.num_outputs}"
            )
        if self.hparams.class_names is None:
            self.hparams.class_names = list(names)  # key order and output names come from the data
            self._build_metrics()
        elif list(self.hparams.class_names) != list(names):
            raise ValueError(
                f"class_names {self.hparams.class_names} differ from the data's {names}"
            )

    def setup(self, stage: str) -> None:
        datamodule = getattr(self.trainer, "datamodule", None)
        if datamodule is not None:
            self._check_data(datamodule)
        if self.head is None:
            if datamodule is None or not hasattr(datamodule, "embed_dim"):
                raise ValueError("in_dim is not set and the datamodule has no embed_dim")
            self._build_head(datamodule.embed_dim)
        if self.audio_encoder is not None and datamodule is not None:
            data_rate = getattr(datamodule, "sample_rate", self.audio_encoder.sample_rate)
            if data_rate != self.audio_encoder.sample_rate:
                raise ValueError(
                    f"the data is at {data_rate} Hz but the checkpoint's encoder expects "
                    f"{self.audio_encoder.sample_rate} Hz"
                )

    def train(self, mode: bool = True) -> "ProbeModule":
        super().train(mode)
        if self.audio_encoder is not None:
            self.audio_encoder.eval()  # frozen: batch-norm statistics and dropout stay fixed
        return self

    def embed(self, batch: dict) -> Tensor:
        """``(B, D)`` embeddings of a batch: cached, or from the frozen encoder."""
        if self.audio_encoder is None:
            return batch["embedding"]
        with torch.no_grad():
            return self.audio_encoder(batch["audio"][:, 0])  # first view: (B, T)

    def forward(self, batch: dict) -> Tensor:
        """``(B, K)`` logits (or regression values) of a batch."""
        return self.head(self.embed(batch))

    def _check_labels(self, labels: Tensor) -> None:
        outputs = self.num_outputs if self.task != "multiclass" else None
        if self.task == "multiclass" and labels.dim() != 1:
            raise ValueError(
                f"multiclass labels must be (B,) class indices, got {tuple(labels.shape)}"
            )
        if outputs is not None and labels.shape[-1] != outputs:
            raise ValueError(
                f"the batch has {labels.shape[-1]} {self.task} outputs but the probe was built "
                f"for num_outputs={outputs}"
            )

    def _shared_step(self, batch: dict, stage: str) -> Tensor:
        labels = batch["labels"]
        self._check_labels(labels)
        preds = self(batch)
        loss = probe_loss(preds, labels, self.task)
        if stage == "train":
            kernels = [linear.weight for linear in self.head.linears()]
            loss = loss + l2_penalty(kernels, self.hparams.weight_decay)
        else:
            metrics = self.val_metrics if stage == "val" else self.test_metrics
            metrics.update(preds.detach(), labels.long() if self.task == "multilabel" else labels)
        self.log(f"{stage}/loss", loss, prog_bar=stage != "test", batch_size=len(labels))
        return loss

    def training_step(self, batch: dict, batch_idx: int) -> Tensor:
        return self._shared_step(batch, "train")

    def validation_step(self, batch: dict, batch_idx: int) -> None:
        self._shared_step(batch, "val")

    def test_step(self, batch: dict, batch_idx: int) -> None:
        self._shared_step(batch, "test")

    def on_validation_epoch_end(self) -> None:
        self.val_metrics.log_epoch(self, "val")

    def on_test_epoch_end(self) -> None:
        self.test_metrics.log_epoch(self, "test")

    def configure_optimizers(self) -> dict:
        hp = self.hparams
        optimizer = torch.optim.Adam(self.head.parameters(), lr=hp.lr, eps=ADAM_EPS)
        total = hp.max_steps if hp.max_steps > 0 else int(self.trainer.estimated_stepping_batches)
        scheduler = WarmupCosineLR(optimizer, warmup_steps=hp.warmup_steps, total_steps=total)
        return {
            "optimizer": optimizer,
            "lr_scheduler": {"scheduler": scheduler, "interval": "step"},
        }
