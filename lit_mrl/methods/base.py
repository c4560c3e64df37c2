"""PretrainModule: the plumbing every pre-training method shares."""

import math
from pathlib import Path

import lightning as L
import torch
from lightning.pytorch.cli import LRSchedulerCallable, OptimizerCallable
from lightning.pytorch.utilities import rank_zero_info, rank_zero_warn
from torch import Tensor, nn

from lit_mrl.models.audio_encoder import AudioEncoder
from lit_mrl.models.frontend import LogMelSpectrogram
from lit_mrl.schedules import WarmupCosineLR, schedule_horizon


class NonFiniteLossError(ValueError):
    """The training loss became NaN or Inf; the run stops instead of training on it."""


class PretrainModule(L.LightningModule):
    """An :class:`~lit_mrl.models.AudioEncoder` + optimizer plumbing; methods add a head and a loss.

    Subclasses implement ``_shared_step(batch, stage) -> loss``. Batches are dicts from
    :class:`~lit_mrl.data.ShardDataModule` with ``audio`` ``(B, V, T)``. The encoder and
    frontend live in ``self.audio_encoder`` (waveform in, embedding out), which is what
    ``embed``, probes and the HEAR module use.

    Args:
        encoder: maps ``(B, n_mels, frames)`` log-mel windows to ``(B, embed_dim)``.
        optimizer: builds the optimizer from the parameters.
        scheduler: builds the LR scheduler (stepped every optimisation step).
        sample_rate: audio rate the frontend expects, in Hz; data at another rate
            is refused.
        frontend: waveform-to-log-mel module; default: the MULE log-mel frontend at
            ``sample_rate``.
        compile: ``torch.compile`` the encoder (same results, faster on GPU).
        channels_last: run the encoder in channels-last memory format.
        init_weights: a lit_mrl checkpoint, or an encoder folder (``export``,
            ``import_mule``), whose ``audio_encoder`` weights this module starts from, to fine-tune or continue
            pre-training; heads start fresh. Loaded when training starts (weights only,
            shapes checked), not when a checkpoint of this module is loaded, and skipped
            when resuming (``ckpt_path``): the resumed state wins.
    """

    def __init__(
        self,
        encoder: nn.Module,
        optimizer: OptimizerCallable = torch.optim.Adam,
        scheduler: LRSchedulerCallable | None = None,
        sample_rate: int = 16000,
        frontend: LogMelSpectrogram | None = None,
        compile: bool = False,
        channels_last: bool = False,
        init_weights: str | None = None,
    ) -> None:
        super().__init__()
        frontend = frontend if frontend is not None else LogMelSpectrogram(sample_rate)
        if frontend.sample_rate != sample_rate:
            raise ValueError(
                f"the frontend is at {frontend.sample_rate} Hz but sample_rate={sample_rate}"
            )
        self.audio_encoder = AudioEncoder(encoder, frontend, channels_last, compile)
        self.optimizer = optimizer
        self.scheduler = scheduler
        self.sample_rate = sample_rate
        self.init_weights = init_weights
        self._init_weights_pending = init_weights is not None
        self._resumed_rng: dict | None = None

    def embed(self, audio: Tensor) -> Tensor:
        """Embed clips: ``(B, T)`` waveform at ``sample_rate`` -> ``(B, embed_dim)``.

        Embeddings are taken before any projector.
        """
        return self.audio_encoder(audio)

    def _shared_step(self, batch: dict, stage: str) -> Tensor:
        raise NotImplementedError

    def setup(self, stage: str) -> None:
        from lit_mrl.data.datamodule import ShardDataModule

        datamodule = self.trainer.datamodule
        data_rate = (
            datamodule.sample_rate if isinstance(datamodule, ShardDataModule) else self.sample_rate
        )
        if data_rate != self.sample_rate:
            raise ValueError(
                f"the data is at {data_rate} Hz but the model's frontend expects "
                f"{self.sample_rate} Hz (model.init_args.sample_rate); reshard the data "
                "or change the model's sample rate"
            )
        if self._init_weights_pending:  # once: a later fit/test keeps the trained weights
            self._init_weights_pending = False
            if self.trainer.ckpt_path is None:
                load_encoder_weights(self.audio_encoder, self.init_weights)
                rank_zero_info(f"audio_encoder weights from {self.init_weights}")

    def training_step(self, batch: dict, batch_idx: int) -> Tensor:
        loss = self._shared_step(batch, "train")
        if not bool(torch.isfinite(loss)):  # one sync per step: cheap beside a training step
            raise NonFiniteLossError(
                f"train/loss is {loss.item()} at step {self.global_step} (epoch "
                f"{self.current_epoch}, batch {batch_idx}): training stopped before this "
                "step was applied; lower the learning rate, or check the data and init_weights"
            )
        return loss

    def validation_step(self, batch: dict, batch_idx: int) -> None:
        self._shared_step(batch, "val")

    def test_step(self, batch: dict, batch_idx: int) -> None:
        self._shared_step(batch, "test")

    def on_train_batch_start(self, batch: dict, batch_idx: int) -> None:
        # the LR this batch's optimisation step uses
        self.log("train/lr", self.trainer.optimizers[0].param_groups[0]["lr"])

    def on_fit_start(self) -> None:
        count = sum(p.numel() for p in self.parameters())
        encoder = sum(p.numel() for p in self.audio_encoder.parameters())
        rank_zero_info(
            f"{type(self).__name__}: {count:,} parameters ({encoder:,} in the encoder "
            f"{self.audio_encoder.encoder_class}, embed_dim {self.audio_encoder.embed_dim})"
        )

    def on_train_epoch_start(self) -> None:
        if self._resumed_rng is not None:
            # Set here, not on load: the sanity check and loader start-up between loading
            # and this point draw from the global RNG, which the uninterrupted run did not.
            torch.set_rng_state(self._resumed_rng["cpu"])
            if self._resumed_rng.get("cuda") and torch.cuda.is_available():
                torch.cuda.set_rng_state_all(self._resumed_rng["cuda"])
            self._resumed_rng = None

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        # The global RNG drives stochastic depth and augmentations: a run resumed from
        # this checkpoint continues with the same random draws.
        checkpoint["torch_rng_state"] = torch.get_rng_state()
        if torch.cuda.is_available():
            checkpoint["cuda_rng_states"] = torch.cuda.get_rng_state_all()

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        if "torch_rng_state" in checkpoint:
            self._resumed_rng = {
                "cpu": checkpoint["torch_rng_state"],
                "cuda": checkpoint.get("cuda_rng_states"),
            }

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


def load_encoder_weights(audio_encoder: nn.Module, path: str | Path) -> None:
    """Copy the encoder weights of a lit_mrl checkpoint or encoder folder into ``audio_encoder``.

    Reads tensors only (``weights_only=True``, or an exported folder's
    ``model.safetensors``) and builds nothing, so no class named in the file is imported. Every tensor must be there with the model's shape.

    Raises:
        FileNotFoundError: no such file.
        ValueError: not a checkpoint, or tensors missing, unexpected, of another shape or
            holding NaN/Inf (named).
    """
    from lit_mrl.models.export import WEIGHTS_NAME, is_artifact

    path = Path(path)
    if is_artifact(path):  # an exported encoder: its tensors are the AudioEncoder's
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        try:
            theirs = load_file(str(path / WEIGHTS_NAME))
        except (SafetensorError, OSError, RuntimeError) as err:
            raise ValueError(f"init_weights: {path / WEIGHTS_NAME} is not readable: {err}") from err
        prefix = ""
    else:
        theirs, prefix = _checkpoint_encoder_state(path), "audio_encoder."
    ours = audio_encoder.state_dict()
    for what, names in (
        ("misses", set(ours) - set(theirs)),
        ("has unknown", set(theirs) - set(ours)),
    ):
        if names:
            shown = ", ".join(prefix + n for n in sorted(names)[:5])
            more = f", ... ({len(names)} in all)" if len(names) > 5 else ""
            raise ValueError(
                f"init_weights: {path} {what} audio_encoder tensors: {shown}{more} "
                "(another encoder or frontend?)"
            )
    for name, value in theirs.items():
        if not isinstance(value, Tensor):
            raise ValueError(f"init_weights: {path}: {prefix}{name} is not a tensor")
        if value.shape != ours[name].shape:
            raise ValueError(
                f"init_weights: {path}: {prefix}{name} has shape {tuple(value.shape)}, "
                f"the model's {tuple(ours[name].shape)}"
            )
        if value.is_floating_point() and not bool(torch.isfinite(value).all()):
            bad = int((~torch.isfinite(value)).sum())
            raise ValueError(f"init_weights: {path}: {prefix}{name} holds {bad} NaN/Inf values")
    audio_encoder.load_state_dict(theirs)


def _checkpoint_encoder_state(path: Path) -> dict[str, Tensor]:
    """The ``audio_encoder.*`` tensors of a checkpoint, names without the prefix."""
    if not path.is_file():
        raise FileNotFoundError(f"init_weights: checkpoint {path} not found")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # a truncated file, a pickle with code, not a checkpoint
        raise ValueError(f"init_weights: {path} is not a readable checkpoint: {err}") from err
    state = ckpt.get("state_dict") if isinstance(ckpt, dict) else None
    if not isinstance(state, dict):
        raise ValueError(f"init_weights: {path} is not a Lightning checkpoint (no state_dict)")
    prefix = "audio_encoder."
    return {k.removeprefix(prefix): v for k, v in state.items() if k.startswith(prefix)}
