"""``python -m lit_mrl``: one entry point, one command-line style.

``fit``/``validate``/``test``/``predict`` are the Lightning CLI
(:mod:`lit_mrl.cli.lightning`); the tools (``embed``, ``probe``, ``report``, ``export``,
``label``, ``similar``, ``demo``, ``import_mule``) are typed functions parsed by
jsonargparse the same way (:mod:`lit_mrl.cli.tools`): ``--config FILE``, ``--print_config``, snake_case options,
no abbreviations, unknown options are errors. This module imports neither torch nor
Lightning, so ``--help`` and ``--version`` answer at once.
"""

from __future__ import annotations

import os
import sys

from lit_mrl import __version__
from lit_mrl.errors import DEBUG_ENV, EXIT_CODES_HELP, EXIT_USAGE

LIGHTNING_COMMANDS = ("fit", "validate", "test", "predict")
# name -> (module, function, positional list parameters, one-line description)
TOOL_COMMANDS: dict[str, tuple[str, str, tuple[str, ...], str]] = {
    "embed": (
        "lit_mrl.embed.command",
        "embed",
        (),
        "embed shards or audio files with a checkpoint (timeline + track mean)",
    ),
    "probe": (
        "lit_mrl.probe.command",
        "probe",
        (),
        "grid-search probes on embeddings, select on validation, test with intervals",
    ),
    "report": (
        "lit_mrl.report.command",
        "report",
        ("results",),
        "tasks x models results table with intervals (markdown, CSV, PNG)",
    ),
    "evaluate": (
        "lit_mrl.evaluate",
        "evaluate",
        (),
        "embed + probe + report every task folder with checkpoints, beside the log-mel baseline",
    ),
    "export": (
        "lit_mrl.models.command",
        "export",
        ("checkpoint",),
        "a checkpoint's encoder as a folder (config.json + model.safetensors + model card)",
    ),
    "label": (
        "lit_mrl.catalog.label",
        "label",
        (),
        "label every track of an embedding store with trained probe heads (Parquet + CSV)",
    ),
    "similar": (
        "lit_mrl.catalog.similar",
        "similar",
        (),
        "nearest-neighbour index of track embeddings (FAISS): query by key or audio, evaluate",
    ),
    "demo": ("lit_mrl.demo.run", "demo", (), "the whole pipeline on an offline toy corpus, CPU"),
    "import_mule": (
        "lit_mrl.mule.command",
        "import_mule",
        ("source",),
        "turn the released MULE weights into a lit_mrl checkpoint",
    ),
}


def print_help() -> None:
    """The top-level help: every command with one line."""
    print(f"lit_mrl {__version__}: Lightning Music Representation Learning\n")
    print("usage: python -m lit_mrl <command> [options]   (or: lit-mrl <command> ...)")
    print("       python -m lit_mrl <command> --help     every option of a command\n")
    print("Training (Lightning CLI):")
    for name in LIGHTNING_COMMANDS:
        print(f"  {name:<12} {name} a model: -c CONFIG (repeatable), --data.root SHARDS")
    print("\nTools:")
    for name, (*_, about) in TOOL_COMMANDS.items():
        print(f"  {name:<12} {about}")
    print("\nOptions for every command:")
    print("  --debug      show tracebacks of errors (or set LIT_MRL_DEBUG=1)")
    print("  --version    print the version and exit\n")
    print(EXIT_CODES_HELP)


def main(args: list[str] | None = None) -> int:
    """Entry point of ``python -m lit_mrl`` and the ``lit-mrl`` script; returns the exit code."""
    from_argv = args is None
    args = list(sys.argv[1:] if args is None else args)
    if "--debug" in args:
        args.remove("--debug")
        os.environ[DEBUG_ENV] = "1"
        if from_argv:  # Lightning reads sys.argv itself
            sys.argv.remove("--debug")
    if not args or args[0] in ("-h", "--help", "help"):
        print_help()
        return 0
    if args[0] in ("-V", "--version"):
        print(f"lit_mrl {__version__}")
        return 0
    command, rest = args[0], args[1:]
    if command in TOOL_COMMANDS:
        from lit_mrl.cli.tools import run_tool

        module, function, positional, _ = TOOL_COMMANDS[command]
        return run_tool(module, function, rest, f"python -m lit_mrl {command}", positional)
    if command in LIGHTNING_COMMANDS:
        from lit_mrl.cli.lightning import run_lightning

        return run_lightning(None if from_argv else args, args)
    known = ", ".join((*LIGHTNING_COMMANDS, *TOOL_COMMANDS))
    print(
        f"python -m lit_mrl: error: unknown command {command!r}; commands: {known}", file=sys.stderr
    )
    return EXIT_USAGE
