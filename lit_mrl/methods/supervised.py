"""Supervised multi-label tagging (the paper's "Supervised" models)."""

import torch
import torch.nn.functional as F
from lightning.pytorch.cli import LRSchedulerCallable, OptimizerCallable
from torch import Tensor, nn

from lit_mrl.methods.base import PretrainModule
from lit_mrl.metrics import TaskScore
from lit_mrl.models.frontend import LogMelSpectrogram
from lit_mrl.models.heads import ProjectionHead


class SupervisedTaggingModule(PretrainModule):
    """Multi-hot tag prediction with sigmoid BCE through the paper's projector.

    Embeddings are taken before the projector (3 x 4096 ReLU, then a bias-free linear
    layer to the tag vocabulary). Validation and test log macro ROC-AUC and AP. Shards of
    a multiclass task train as one tag per clip (class indices become one-hot).

    Args:
        encoder: see :class:`PretrainModule`.
        num_tags: size of the tag vocabulary; the CLI fills it from ``info.json``.
        projector_dims: hidden widths of the projector.
        projector_input_norm: batch-normalise embeddings at the projector's input (not in
            the paper; see :class:`~lit_mrl.models.heads.ProjectionHead`).
        optimizer: see :class:`PretrainModule`.
        scheduler: see :class:`PretrainModule`.
        sample_rate: see :class:`PretrainModule`.
        frontend: see :class:`PretrainModule`.
        compile: see :class:`PretrainModule`.
        channels_last: see :class:`PretrainModule`.
        init_weights: see :class:`PretrainModule`.
    """

    def __init__(
        self,
        encoder: nn.Module,
        num_tags: int | None = None,
        projector_dims: list[int] = [4096, 4096, 4096],  # noqa: B006
        projector_input_norm: bool = False,
        optimizer: OptimizerCallable = torch.optim.Adam,
        scheduler: LRSchedulerCallable | None = None,
        sample_rate: int = 16000,
        frontend: LogMelSpectrogram | None = None,
        compile: bool = False,
        channels_last: bool = False,
        init_weights: str | None = None,
    ) -> None:
        super().__init__(
            encoder, optimizer, scheduler, sample_rate, frontend, compile, channels_last,
            init_weights,
        )  # fmt: skip
        if num_tags is None:
            raise ValueError(
                "num_tags is not set: give model.init_args.num_tags, or run through "
                "`python -m lit_mrl` with --data.root so it is read from info.json"
            )
        self.save_hyperparameters()
        self.num_tags = num_tags
        self.head = ProjectionHead(
            self.audio_encoder.embed_dim, num_tags, projector_dims, projector_input_norm
        )
        # macro ROC-AUC / AP exactly as the probes compute them (lit_mrl.metrics)
        self.val_metrics = TaskScore("multilabel", num_tags)
        self.test_metrics = TaskScore("multilabel", num_tags)

    def _shared_step(self, batch: dict, stage: str) -> Tensor:
        audio, labels = batch["audio"][:, 0], batch["labels"]  # (B, T), (B, K)
        if labels.dim() == 1 and not labels.is_floating_point():  # single-label data: (B,)
            labels = F.one_hot(labels, self.num_tags).float()  # one tag per clip
        if labels.shape[-1] != self.num_tags:
            raise ValueError(
                f"the batch has {labels.shape[-1]} tags but the model was built for "
                f"{self.num_tags} (model.init_args.num_tags)"
            )
        logits = self.head(self.embed(audio))
        loss = F.binary_cross_entropy_with_logits(logits, labels)
        self.log(f"{stage}/loss", loss, prog_bar=True, batch_size=len(labels))
        if stage != "train":
            metrics = self.val_metrics if stage == "val" else self.test_metrics
            metrics.update(logits.detach(), labels.long())
        return loss

    def on_validation_epoch_end(self) -> None:
        self.val_metrics.log_epoch(self, "val")

    def on_test_epoch_end(self) -> None:
        self.test_metrics.log_epoch(self, "test")

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        stored = checkpoint["state_dict"].get("head.out.weight")
        if stored is not None and stored.shape[0] != self.num_tags:
            raise ValueError(
                f"the checkpoint's head predicts {stored.shape[0]} tags but this model "
                f"has num_tags={self.num_tags}"
            )
