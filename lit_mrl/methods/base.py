"""PretrainModule: the plumbing every pre-training method shares."""

import math
import time

import lightning as L
import torch
from lightning.pytorch.cli import LRSchedulerCallable, OptimizerCallable
from lightning.pytorch.utilities import rank_zero_warn
from torch import Tensor, nn

from lit_mrl.models.frontend import LogMelSpectrogram
from lit_mrl.schedules import WarmupCosineLR, schedule_horizon


class PretrainModule(L.LightningModule):
    """Encoder + log-mel frontend + optimizer plumbing; methods add a head and a loss.

    Subclasses implement ``_shared_step(batch, stage) -> loss``. Batches are dicts from
    :class:`~lit_mrl.data.ShardDataModule` with ``audio`` ``(B, V, T)``.

    Args:
        encoder: maps ``(B, n_mels, frames)`` log-mel windows to ``(B, embed_dim)``.
        optimizer: builds the optimizer from the parameters.
        scheduler: builds the LR scheduler (stepped every optimisation step).
        sample_rate: audio rate the frontend expects, in Hz; data at another rate
            is refused.
        frontend: waveform-to-spectrogram module; default: the MULE log-mel frontend.
        compile: ``torch.compile`` the encoder (same results, faster on GPU).
        channels_last: run the encoder in channels-last memory format.
    """

    def __init__(
        self,
        encoder: nn.Module,
        optimizer: OptimizerCallable = torch.optim.Adam,
        scheduler: LRSchedulerCallable | None = None,
        sample_rate: int = 16000,
        frontend: nn.Module | None = None,
        compile: bool = False,
        channels_last: bool = False,
    ) -> None:
        super().__init__()
        self.encoder = encoder
        self.frontend = frontend if frontend is not None else LogMelSpectrogram(sample_rate)
        self.optimizer = optimizer
        self.scheduler = scheduler
        self.sample_rate = sample_rate
        self.channels_last = channels_last
        if channels_last:
            self.encoder.to(memory_format=torch.channels_last)
        if compile:
            self.encoder.compile()  # in place: state-dict keys stay the same
        self._last_batch_end: float | None = None
        self._resumed_rng: Tensor | None = None

    def embed(self, audio: Tensor) -> Tensor:
        """Embed clips.

        Args:
            audio: ``(B, T)`` or ``(B, 1, T)`` waveform at ``sample_rate``.

        Returns:
            ``(B, embed_dim)`` embeddings (taken before any projector).
        """
        spec = self.frontend(audio).unsqueeze(1)  # (B, 1, n_mels, frames)
        if self.channels_last:
            spec = spec.contiguous(memory_format=torch.channels_last)
        return self.encoder(spec)

    def _shared_step(self, batch: dict, stage: str) -> Tensor:
        raise NotImplementedError

    def setup(self, stage: str) -> None:
        datamodule = getattr(self.trainer, "datamodule", None)
        data_rate = getattr(datamodule, "sample_rate", self.sample_rate)
        if data_rate != self.sample_rate:
            raise ValueError(
                f"the data is at {data_rate} Hz but the model's frontend expects "
                f"{self.sample_rate} Hz (model.init_args.sample_rate); reshard the data "
                "or change the model's sample rate"
            )

    def training_step(self, batch: dict, batch_idx: int) -> Tensor:
        return self._shared_step(batch, "train")

    def validation_step(self, batch: dict, batch_idx: int) -> None:
        self._shared_step(batch, "val")

    def test_step(self, batch: dict, batch_idx: int) -> None:
        self._shared_step(batch, "test")

    def on_train_batch_start(self, batch: dict, batch_idx: int) -> None:
        # the LR this batch's optimisation step uses
        self.log("train/lr", self.trainer.optimizers[0].param_groups[0]["lr"])

    def on_train_batch_end(self, outputs: object, batch: dict, batch_idx: int) -> None:
        # Wall time between batch ends includes data loading: the real throughput.
        now = time.perf_counter()
        if self._last_batch_end is not None:
            clips = batch["audio"].shape[0] * batch["audio"].shape[1]
            self.log("train/clips_per_sec", clips / (now - self._last_batch_end))
        self._last_batch_end = now

    def on_train_epoch_start(self) -> None:
        self._last_batch_end = None
        if self._resumed_rng is not None:
            # Set here, not on load: the sanity check and loader start-up between loading
            # and this point draw from the global RNG, which the uninterrupted run did not.
            torch.set_rng_state(self._resumed_rng)
            self._resumed_rng = None

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        # The global RNG drives stochastic depth and augmentations: a run resumed from
        # this checkpoint continues with the same random draws.
        checkpoint["torch_rng_state"] = torch.get_rng_state()

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        self._resumed_rng = checkpoint.get("torch_rng_state")

    def on_train_start(self) -> None:
        run_steps = self.trainer.estimated_stepping_batches
        for config in self.trainer.lr_scheduler_configs:
            horizon = schedule_horizon(config.scheduler)
            if horizon is not None and config.interval == "step" and horizon < run_steps:
                rank_zero_warn(
                    f"the LR schedule {type(config.scheduler).__name__} ends after {horizon} "
                    f"steps but this run has {run_steps}: the last {run_steps - horizon} "
                    "steps train at the schedule's final LR (set its total_steps to -1 to "
                    "span the whole run)"
                )

    def _run_steps(self) -> int:
        steps = self.trainer.estimated_stepping_batches
        if not math.isfinite(steps) or steps <= 0:
            raise ValueError(
                f"cannot tell how many optimisation steps this run has ({steps}): set "
                "trainer.max_steps, or the scheduler's total_steps"
            )
        return int(steps)

    def configure_optimizers(self) -> dict:
        optimizer = self.optimizer(self.parameters())
        if self.scheduler is None:
            return {"optimizer": optimizer}
        scheduler = self.scheduler(optimizer)
        if isinstance(scheduler, WarmupCosineLR) and scheduler.total_steps < 0:
            scheduler.total_steps = self._run_steps()
        return {
            "optimizer": optimizer,
            "lr_scheduler": {"scheduler": scheduler, "interval": "step"},
        }
