"""Write ``last.ckpt`` when a run is interrupted (Ctrl-C, SIGTERM), so it can resume."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import lightning as L
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.utilities.exceptions import SIGTERMException
from lightning.pytorch.utilities.types import STEP_OUTPUT

from lit_mrl.signals import DeferredInterrupt


class InterruptCheckpoint(L.Callback):
    """Save the state at an interruption where the run's last checkpoint lives.

    Lightning stops a run on Ctrl-C (``KeyboardInterrupt``) and on SIGTERM
    (``SIGTERMException``, raised at the end of a training batch), but saves nothing. This
    callback writes the state then to the file of the run's monitor-less
    ``ModelCheckpoint`` (``last.ckpt`` with ``configs/trainer.yaml``), and records what
    happened for the command's exit status (130 interrupted, 143 terminated). A run
    stopped inside an epoch resumes from that step; its data order then differs from an
    uninterrupted run (the stream restarts its epoch), so only epoch-end checkpoints
    resume bit-exactly.

    During ``fit`` the first Ctrl-C is deferred to the end of the current batch (see
    :class:`~lit_mrl.signals.DeferredInterrupt`): raised in the middle of decoding a
    shard's audio it would be swallowed, the track counted as corrupt and the run would go
    on. A second Ctrl-C stops at once.
    """

    def __init__(self) -> None:
        self.signal: str | None = None  # "SIGINT" or "SIGTERM" once interrupted
        self.saved: Path | None = None
        self.step: int | None = None
        self.ctrl_c = DeferredInterrupt("stopping after this batch, writing last.ckpt")

    # Installed once Lightning's signal connector has saved the process's handlers (it
    # does so after on_fit_start): its teardown, which runs on every way out of fit, then
    # puts the handler from before the run back. Installed in on_fit_start, ours was the
    # one it saved and restored, left behind after an interrupted or failed fit, where it
    # swallowed the process's next Ctrl-C.
    def on_sanity_check_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.ctrl_c.install()

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.ctrl_c.install()  # no-op when the sanity check installed it

    def on_train_batch_end(
        self,
        trainer: L.Trainer,
        pl_module: L.LightningModule,
        outputs: STEP_OUTPUT,
        batch: Any,
        batch_idx: int,
    ) -> None:
        self.ctrl_c.check()

    def on_validation_batch_end(
        self,
        trainer: L.Trainer,
        pl_module: L.LightningModule,
        outputs: STEP_OUTPUT,
        batch: Any,
        batch_idx: int,
        dataloader_idx: int = 0,
    ) -> None:
        self.ctrl_c.check()

    def teardown(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        self.ctrl_c.uninstall()

    def on_exception(
        self, trainer: L.Trainer, pl_module: L.LightningModule, exception: BaseException
    ) -> None:
        if isinstance(exception, SIGTERMException):
            self.signal = "SIGTERM"
        elif isinstance(exception, KeyboardInterrupt):
            self.signal = "SIGINT"
        else:
            return  # a failed run keeps its last good checkpoint, not the failed state
        self.step = trainer.global_step
        target = _last_checkpoint_path(trainer)
        if target is None or trainer.state.fn != "fit" or trainer.global_step == 0:
            return
        trainer.save_checkpoint(target)
        self.saved = target


def _last_checkpoint_path(trainer: L.Trainer) -> Path | None:
    for callback in trainer.checkpoint_callbacks:
        if isinstance(callback, ModelCheckpoint) and callback.monitor is None:
            if callback.dirpath is None:
                return None
            name = (
                callback.filename if callback.filename and "{" not in callback.filename else "last"
            )
            return Path(callback.dirpath) / f"{name}{callback.FILE_EXTENSION}"
    return None
