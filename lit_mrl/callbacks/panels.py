"""W&B panels worth opening: spectrograms of real batches and embedding tables.

Both callbacks do nothing unless the trainer logs to W&B.
"""

import lightning as L
import numpy as np
import torch
from lightning.pytorch.loggers import WandbLogger


def _wandb(trainer: L.Trainer) -> WandbLogger | None:
    for logger in trainer.loggers:
        if isinstance(logger, WandbLogger):
            return logger
    return None


class SpectrogramLogger(L.Callback):
    """Log the model's input (log-mel windows) of the first training batch each epoch.

    Args:
        num_examples: clips drawn in the panel.
        every_n_epochs: log on every n-th epoch.
    """

    def __init__(self, num_examples: int = 4, every_n_epochs: int = 1) -> None:
        self.num_examples = num_examples
        self.every_n_epochs = every_n_epochs

    def on_train_batch_start(
        self, trainer: L.Trainer, pl_module: L.LightningModule, batch: dict, batch_idx: int
    ) -> None:
        logger = _wandb(trainer)
        if logger is None or batch_idx != 0 or trainer.current_epoch % self.every_n_epochs:
            return
        views = batch["audio"][: self.num_examples]  # (n, V, T)
        with torch.no_grad():
            # (n, V, T) -> (n * V, n_mels, frames): exactly what the encoder sees
            spec = pl_module.audio_encoder.spectrogram(views.flatten(0, 1)).float().cpu()
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure  # no pyplot: no global backend is chosen

        fig = Figure(figsize=(3 * len(spec), 2.6))
        axes = fig.subplots(1, len(spec), squeeze=False)
        keys = [k for k in batch["key"][: len(views)] for _ in range(views.shape[1])]
        for ax, image, key in zip(axes[0], spec, keys, strict=True):
            ax.imshow(image, origin="lower", aspect="auto", cmap="magma")
            ax.set_title(key[:24], fontsize=8)
            ax.set_xlabel("frame (10 ms)")
        axes[0][0].set_ylabel("mel band")
        fig.tight_layout()
        canvas = FigureCanvasAgg(fig)
        canvas.draw()
        image = np.asarray(canvas.buffer_rgba())[..., :3].copy()  # (H, W, 3) uint8
        logger.log_image("train/spectrogram", [image], step=trainer.global_step)


class EmbeddingTableLogger(L.Callback):
    """Log validation embeddings as a W&B table (open it in W&B's 2-D projection view).

    Args:
        max_items: clips kept per validation epoch.
    """

    def __init__(self, max_items: int = 256) -> None:
        self.max_items = max_items
        self.rows: list[list] = []

    def on_validation_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.rows = []

    def on_validation_batch_end(
        self,
        trainer: L.Trainer,
        pl_module: L.LightningModule,
        outputs: object,
        batch: dict,
        batch_idx: int,
        dataloader_idx: int = 0,
    ) -> None:
        if _wandb(trainer) is None or len(self.rows) >= self.max_items:
            return
        with torch.no_grad():
            emb = pl_module.audio_encoder(batch["audio"][:, 0]).float().cpu()
        from lit_mrl.data.datamodule import ShardDataModule

        data = trainer.datamodule
        names = data.info.vocabulary if isinstance(data, ShardDataModule) else []
        for key, vector, labels in zip(batch["key"], emb, batch["labels"], strict=True):
            self.rows.append([key, _label_text(labels, names), vector.tolist()])

    def on_validation_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        logger = _wandb(trainer)
        if logger is None or not self.rows or trainer.sanity_checking:
            return
        rows = self.rows[: self.max_items]
        logger.log_table("val/embeddings", columns=["key", "labels", "embedding"], data=rows)


def _label_text(labels: torch.Tensor, names: list[str]) -> str:
    """Readable labels of one sample: multi-hot, class index or values."""
    if labels.dim() == 0:
        index = int(labels)
        return names[index] if index < len(names) else str(index)
    if labels.dtype.is_floating_point and set(labels.unique().tolist()) <= {0.0, 1.0}:
        return ",".join(names[i] for i in labels.nonzero().flatten().tolist() if i < len(names))
    return ",".join(f"{v:.2f}" for v in labels.tolist())
