"""``python -m lit_mrl``: the Lightning CLI plus lit_mrl's own subcommands.

``fit``/``validate``/``test``/``predict`` go to :class:`LitMRLCLI` (a LightningCLI in
subclass mode, so any LightningModule is chosen by ``class_path``); ``embed``,
``probe`` and ``report`` are lit_mrl's own tools.
"""

import importlib
import inspect
import sys
from pathlib import Path

from lightning import LightningDataModule, LightningModule, Trainer
from lightning.pytorch.cli import LightningArgumentParser, LightningCLI, SaveConfigCallback
from lightning.pytorch.loggers import WandbLogger

# Imported so short class names in configs resolve (the CLI's class_path is the registry).
import lit_mrl.data.datamodule
import lit_mrl.data.embeddings
import lit_mrl.methods
import lit_mrl.probe  # noqa: F401
from lit_mrl import __version__
from lit_mrl.checkpoints import import_class
from lit_mrl.wandb_offline import default_to_offline

LIGHTNING_COMMANDS = ("fit", "validate", "test", "predict")
# name -> (module with a main(args) function, one-line description)
TOOL_COMMANDS: dict[str, tuple[str, str]] = {
    "embed": (
        "lit_mrl.embed",
        "embed shards or audio files with a checkpoint (timeline + track mean)",
    ),
    "probe": ("lit_mrl.probe_search", "grid-search probes on embeddings, select on val, test"),
    "report": ("lit_mrl.report", "tasks x models results table (markdown, CSV, PNG)"),
    "demo": ("lit_mrl.demo", "the whole pipeline on an offline toy corpus, on CPU"),
}


class WandbConfigCallback(SaveConfigCallback):
    """Save ``config.yaml`` beside the run and send the resolved config to W&B."""

    def save_config(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        if isinstance(trainer.logger, WandbLogger):
            config = self.config.clone().as_dict()
            trainer.logger.experiment.config.update(config, allow_val_change=True)


def _accepts(class_path: str, argument: str) -> bool:
    if "." not in class_path:
        return False
    return argument in inspect.signature(import_class(class_path)).parameters


class LitMRLCLI(LightningCLI):
    """LightningCLI with lit_mrl's data module, W&B defaults and label-count filling."""

    def before_instantiate_classes(self) -> None:
        default_to_offline()
        config = self.config[self.subcommand] if self.subcommand else self.config
        model, data = config.model, config.data
        root = data.init_args.get("root") if data and data.get("init_args") else None
        if root is None or not _accepts(model.class_path, "num_tags"):
            return
        from lit_mrl.data.shards import read_info

        vocab_size = len(read_info(root).vocabulary)
        given = model.init_args.get("num_tags")
        if given is None:
            model.init_args.num_tags = vocab_size
        elif given != vocab_size:
            raise ValueError(
                f"model.init_args.num_tags={given} but the data at {root} has "
                f"{vocab_size} labels in info.json"
            )

    def add_arguments_to_parser(self, parser: LightningArgumentParser) -> None:
        # Shards by default; a config may name another data module (e.g. cached embeddings).
        parser.set_defaults({"data": {"class_path": "lit_mrl.data.ShardDataModule"}})


def make_cli(args: list[str] | None = None, run: bool = True) -> LitMRLCLI:
    """Build (and by default run) the Lightning CLI on ``args``."""
    return LitMRLCLI(
        LightningModule,
        LightningDataModule,
        subclass_mode_model=True,
        subclass_mode_data=True,
        save_config_callback=WandbConfigCallback,
        save_config_kwargs={"overwrite": True},
        args=args,
        run=run,
    )


def _print_help() -> None:
    print(f"lit_mrl {__version__}: Lightning Music Representation Learning\n")
    print("usage: python -m lit_mrl <command> [options]   (or: lit-mrl <command> ...)\n")
    print("Training (Lightning CLI; `python -m lit_mrl fit --help` for every option):")
    for name in LIGHTNING_COMMANDS:
        print(f"  {name:<10} {name} a model: --config FILE (repeatable), --data.root SHARDS")
    if TOOL_COMMANDS:
        print("\nTools:")
        for name, (_, about) in TOOL_COMMANDS.items():
            print(f"  {name:<10} {about}")
    print(
        f"\nConfigs: {Path(__file__).resolve().parent.parent / 'configs'} (see configs/README.md)"
    )


def main(args: list[str] | None = None) -> None:
    """Entry point of ``python -m lit_mrl`` and the ``lit-mrl`` script."""
    args = list(sys.argv[1:] if args is None else args)
    if not args or args[0] in ("-h", "--help"):
        _print_help()
        return
    if args[0] in TOOL_COMMANDS:
        module = importlib.import_module(TOOL_COMMANDS[args[0]][0])
        module.main(args[1:])
        return
    if args[0] not in LIGHTNING_COMMANDS and not args[0].startswith("-"):
        known = ", ".join((*LIGHTNING_COMMANDS, *TOOL_COMMANDS))
        raise SystemExit(f"lit_mrl: unknown command {args[0]!r}; commands: {known}")
    make_cli(args)
