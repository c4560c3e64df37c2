"""``fit``/``validate``/``test``/``predict``: the Lightning CLI, set up for lit_mrl.

A LightningCLI in subclass mode, so any LightningModule or data module is chosen by
``class_path`` (the CLI's ``class_path`` is the registry). On top of Lightning's own:
the label count is filled in from the shards' ``info.json``; W&B logs offline unless an
account is set up and receives the resolved config; options are never abbreviated
(``--trainer.max_epoch`` is an error, not ``max_epochs``); user errors are one line;
Lightning's advertising tips and W&B's banners are not printed.
"""

from __future__ import annotations

import inspect
import logging
import os
import sys
import warnings
from typing import Any

from lightning import LightningDataModule, LightningModule, Trainer
from lightning.pytorch.cli import LightningArgumentParser, LightningCLI, SaveConfigCallback
from lightning.pytorch.loggers import WandbLogger

# Imported so short class names in configs resolve (the CLI's class_path is the registry).
import lit_mrl.data.datamodule
import lit_mrl.data.embedding_datamodule
import lit_mrl.methods
import lit_mrl.probe.module  # noqa: F401
from lit_mrl.callbacks.interrupt import InterruptCheckpoint
from lit_mrl.checkpoints import check_state_dict, import_class, read_checkpoint
from lit_mrl.errors import EXIT_INTERRUPTED, EXIT_TERMINATED, UsageError, run_command
from lit_mrl.loggers import default_to_offline
from lit_mrl.trust import check_config, check_value

COMMANDS = ("fit", "validate", "test", "predict")


class RunConfigCallback(SaveConfigCallback):
    """Save the resolved ``config.yaml`` in the run's own folder and send it to W&B.

    The folder is ``trainer.log_dir``: with ``configs/trainer.yaml`` (CSV logger first)
    that is ``runs/<name>/version_<n>/``, beside the run's checkpoints and metrics.
    """

    def save_config(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        for logger in trainer.loggers:
            if isinstance(logger, WandbLogger):
                config = self.config.clone().as_dict()
                logger.experiment.config.update(config, allow_val_change=True)


def _accepts(class_path: str, argument: str) -> bool:
    if "." not in class_path:
        return False
    return argument in inspect.signature(import_class(class_path)).parameters


def _is_shard_data(class_path: str) -> bool:
    from lit_mrl.data.datamodule import ShardDataModule

    if "." not in class_path:
        return class_path == "ShardDataModule"
    target = import_class(class_path)
    return isinstance(target, type) and issubclass(target, ShardDataModule)


class LitMRLCLI(LightningCLI):
    """LightningCLI with lit_mrl's data module, W&B defaults and label-count filling."""

    def before_instantiate_classes(self) -> None:
        default_to_offline()
        config = self.config[self.subcommand] if self.subcommand else self.config
        _loggers_under_root(config.trainer)
        model, data = config.model, config.data
        root = data.init_args.get("root") if data and data.get("init_args") else None
        if root is None and data and _accepts(data.class_path, "root"):
            raise UsageError("data.root is not set: give --data.root DIR (a folder with info.json)")
        if root is None or not model or "." not in str(model.class_path):
            return
        if not _is_shard_data(data.class_path):
            return  # e.g. cached embeddings: no info.json
        from lit_mrl.formats.info import read_info

        info = read_info(root)  # parsed once: the data module and callbacks share it
        if _accepts(model.class_path, "sample_rate"):
            rate = model.init_args.get("sample_rate")
            if rate is not None and rate != info.sample_rate:
                raise UsageError(
                    f"{root}/info.json: sample_rate is {info.sample_rate} Hz but the model's "
                    f"frontend expects {rate} Hz (model.init_args.sample_rate): reshard the "
                    "data or change the model's sample rate"
                )
        if not _accepts(model.class_path, "num_tags"):
            return
        if info.task not in ("multilabel", "multiclass"):
            raise UsageError(
                f"{root}/info.json: task is {info.task!r}, but {model.class_path} trains on "
                "labels (multilabel, or multiclass as one tag per clip)"
            )
        vocab_size = len(info.vocabulary)
        given = model.init_args.get("num_tags")
        if given is None:
            model.init_args.num_tags = vocab_size
        elif given != vocab_size:
            raise ValueError(
                f"model.init_args.num_tags={given} but the data at {root} has "
                f"{vocab_size} labels in info.json"
            )

    def _parse_ckpt_path(self) -> None:
        """Check ``--ckpt_path`` before Lightning reads the classes its hyper-parameters name.

        Lightning rebuilds the model from the checkpoint's ``hyper_parameters`` (and
        imports what they name) while parsing; lit_mrl's trust check runs first, and a
        value the parser then rejects is one line naming the file. Classes the run's own
        configuration names (your encoder) are trusted in the checkpoint too.
        """
        subcommand = self.config.get("subcommand")
        path = self.config[subcommand].get("ckpt_path") if subcommand else None
        self._resume_state: dict[str, Any] | None = None
        if path is None or path in ("last", "best", "hpc", "registry"):
            return super()._parse_ckpt_path()
        ckpt = read_checkpoint(path)
        hparams = ckpt.get("hyper_parameters") or {}
        if not isinstance(hparams, dict):
            raise ValueError(f"{path}: hyper_parameters is not a mapping")
        hparams = {k: v for k, v in hparams.items() if k != "_instantiator"}
        mine = _class_paths(self.config[subcommand].get("model"))
        if "_class_path" in hparams:
            init_args = {k: v for k, v in hparams.items() if k != "_class_path"}
            check_config(hparams["_class_path"], init_args, path, mine, base=LightningModule)
        elif hparams:
            check_value(hparams, Any, path, mine, where="hyper_parameters", what="a checkpoint")
        self._resume_state = ckpt["state_dict"]
        exit_on_error = self.parser.exit_on_error
        self.parser.exit_on_error = False
        try:
            super()._parse_ckpt_path()
        except Exception as err:  # jsonargparse's ArgumentError: a value the module refuses
            raise ValueError(
                f"{path}: its hyper_parameters do not fit {hparams.get('_class_path')}: "
                f"{' '.join(str(err).split())[:400]}"
            ) from err
        finally:
            self.parser.exit_on_error = exit_on_error

    def _check_resume(self) -> None:
        state = getattr(self, "_resume_state", None)
        if state is not None:  # names and shapes, before Lightning loads it (strictly)
            self._resume_state = None
            path = self.config_init[self.subcommand].get("ckpt_path")
            check_state_dict(state, self.model.state_dict(), path)

    before_fit = before_validate = before_test = before_predict = _check_resume

    def add_arguments_to_parser(self, parser: LightningArgumentParser) -> None:
        # Shards by default; a config may name another data module (e.g. cached embeddings).
        parser.set_defaults({"data": {"class_path": "lit_mrl.data.ShardDataModule"}})


def _class_paths(value: Any) -> list[str]:
    """Every ``class_path`` string in a (nested) config namespace or dict."""
    if hasattr(value, "as_dict"):
        value = value.as_dict()
    if isinstance(value, dict):
        found = [value["class_path"]] if isinstance(value.get("class_path"), str) else []
        return found + [p for item in value.values() for p in _class_paths(item)]
    if isinstance(value, (list, tuple)):
        return [p for item in value for p in _class_paths(item)]
    return []


ROOT_PLACEHOLDER = "{default_root_dir}"


def _loggers_under_root(trainer: object) -> None:
    """Replace a logger ``save_dir`` of ``"{default_root_dir}"`` by the trainer's folder.

    So ``--trainer.default_root_dir X`` moves a run's CSV log, checkpoints, config and
    W&B files together (``configs/trainer.yaml`` uses the placeholder).
    """
    loggers = trainer.get("logger")
    root = str(trainer.get("default_root_dir") or ".")
    for logger in loggers if isinstance(loggers, list) else [loggers]:
        init_args = getattr(logger, "init_args", None)
        if init_args is not None and init_args.get("save_dir") == ROOT_PLACEHOLDER:
            init_args.save_dir = root


class _NoTips(logging.Filter):
    """Drop Lightning's "Tip: try installing litlogger/litmodels" advertisements."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "Tip:" not in record.getMessage()


def quiet() -> None:
    """Keep the console to what matters for a run."""
    os.environ.setdefault("WANDB_SILENT", "true")  # W&B's banners; lit_mrl says where runs are
    logging.getLogger("lightning.pytorch.utilities.rank_zero").addFilter(_NoTips())
    for message in (
        r".*isinstance\(treespec, LeafSpec\)` is deprecated.*",  # inside Lightning itself
        r".*is an instance of `nn.Module` and is already saved during checkpointing.*",
        r".*you need to define a `flops_per_batch` attribute.*",  # throughput without FLOPs
    ):
        warnings.filterwarnings("ignore", message=message)


def make_cli(
    args: list[str] | None = None, run: bool = True, interrupt: InterruptCheckpoint | None = None
) -> LitMRLCLI:
    """Build (and by default run) the Lightning CLI on ``args`` (``None``: ``sys.argv``).

    ``interrupt`` (an :class:`InterruptCheckpoint`, one is made if not given) is added to
    every run's callbacks: it writes ``last.ckpt`` on Ctrl-C or SIGTERM.
    """
    quiet()
    no_abbreviations = {"allow_abbrev": False}
    return LitMRLCLI(
        LightningModule,
        LightningDataModule,
        subclass_mode_model=True,
        subclass_mode_data=True,
        save_config_callback=RunConfigCallback,
        save_config_kwargs={"overwrite": True},
        parser_kwargs={
            "prog": "python -m lit_mrl",
            **no_abbreviations,
            **{c: dict(no_abbreviations) for c in COMMANDS},
        },
        trainer_defaults={"callbacks": [interrupt or InterruptCheckpoint()]},
        args=args,
        run=run,
    )


def run_lightning(args: list[str] | None, shown: list[str]) -> int:
    """Run a Lightning subcommand; user errors become one line and exit code 2.

    Args:
        args: the arguments, or ``None`` to let Lightning read ``sys.argv`` itself.
        shown: the arguments (for the program name in messages).
    """
    from lightning.pytorch.utilities.exceptions import SIGTERMException

    prog = f"python -m lit_mrl {shown[0]}"
    interrupt = InterruptCheckpoint()

    def fit_or_other() -> int | None:
        try:
            make_cli(args, interrupt=interrupt)
        except SIGTERMException:  # a SystemExit(None): would exit 0 as if finished
            pass
        except SystemExit:
            if interrupt.signal is None:
                raise  # Lightning exits 1 after Ctrl-C: that one is ours to report
        if interrupt.signal is None:
            return None
        where = (
            f"{interrupt.saved} written; resume with --ckpt_path {interrupt.saved}"
            if interrupt.saved
            else "no checkpoint written"
        )
        print(
            f"{prog}: {'terminated (SIGTERM)' if interrupt.signal == 'SIGTERM' else 'interrupted'}"
            f" at step {interrupt.step}; {where}",
            file=sys.stderr,
        )
        return EXIT_TERMINATED if interrupt.signal == "SIGTERM" else EXIT_INTERRUPTED

    return run_command(fit_or_other, prog)
