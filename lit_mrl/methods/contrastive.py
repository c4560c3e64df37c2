"""Contrastive pre-training: SimCLR on two temporally close crops of one track."""

import torch
from lightning.pytorch.cli import LRSchedulerCallable, OptimizerCallable
from torch import Tensor, nn

from lit_mrl.losses import nt_xent_loss
from lit_mrl.methods.base import PretrainModule
from lit_mrl.models.frontend import LogMelSpectrogram
from lit_mrl.models.heads import ProjectionHead


class ContrastiveModule(PretrainModule):
    """SimCLR (https://arxiv.org/abs/2002.05709) as MULE trains it.

    Positives are two crops of the same track (the data module's ``num_views=2``,
    centres at most ``max_offset_seconds`` apart); negatives are all other crops of
    the global batch: projections are gathered from every device with gradients,
    so 16 devices x 120 pairs give the paper's 1920 pairs. Embeddings are taken
    before the projector (3 x 4096 ReLU, then a bias-free linear layer).

    Args:
        encoder: see :class:`PretrainModule`.
        projection_dim: output size of the projector.
        projector_dims: hidden widths of the projector.
        projector_input_norm: batch-normalise embeddings at the projector's input (not in
            the paper; see :class:`~lit_mrl.models.heads.ProjectionHead`).
        temperature: NT-Xent temperature.
        augment: optional on-device augmentation of both views during training,
            ``(B, T) -> (B, T)``; ``None`` (the paper) uses plain crops.
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
        projection_dim: int = 128,
        projector_dims: list[int] = [4096, 4096, 4096],  # noqa: B006
        projector_input_norm: bool = False,
        temperature: float = 0.1,
        augment: nn.Module | None = None,
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
        self.save_hyperparameters()
        self.head = ProjectionHead(
            self.audio_encoder.embed_dim, projection_dim, projector_dims, projector_input_norm
        )
        self.temperature = temperature
        self.augment = augment

    def _shared_step(self, batch: dict, stage: str) -> Tensor:
        audio = batch["audio"]  # (B, 2, T)
        if audio.shape[1] != 2:
            raise ValueError(
                f"contrastive training needs two views per track, got {audio.shape[1]}: "
                "set data.num_views: 2"
            )
        n = audio.shape[0]
        views = audio.transpose(0, 1).reshape(2 * n, -1)  # (B, 2, T) -> (2B, T), view-major
        if stage == "train" and self.augment is not None:
            views = self.augment(views)
        z = self.head(self.embed(views))  # one encoder pass for both views
        z1, z2 = z[:n], z[n:]
        gathered, rank = None, 0
        if stage == "train" and self.trainer.world_size > 1:
            # (W, n, d) -> (W * n, d); sync_grads lets negatives from other devices
            # send their gradients back, so the loss is the global-batch loss.
            gathered = tuple(self.all_gather(v, sync_grads=True).flatten(0, 1) for v in (z1, z2))
            rank = self.global_rank
        loss = nt_xent_loss(z1, z2, self.temperature, gathered, rank)
        self.log(f"{stage}/loss", loss, prog_bar=True, batch_size=n)
        return loss
