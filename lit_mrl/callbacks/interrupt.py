"""Write ``last.ckpt`` when a run is interrupted (Ctrl-C, SIGTERM), so it can resume."""

from __future__ import annotations

from pathlib import Path

import lightning as L
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.utilities.exceptions import SIGTERMException


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
    """

    def __init__(self) -> None:
        self.signal: str | None = None  # "SIGINT" or "SIGTERM" once interrupted
        self.saved: Path | None = None
        self.step: int | None = None

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
