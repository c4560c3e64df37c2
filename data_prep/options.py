"""What every data_prep command shares: checked number options, ``--debug``, exit codes.

Numbers are checked by argparse ``type=`` functions, so ``--workers -1`` is a parse
error naming the option (``argument --workers: must be at least 0, got -1``) before
anything is read or written. Each command's body runs through
:func:`lit_mrl.errors.run_command`, which prints a user error as one line and returns
the shared exit code (see :data:`EXIT_CODES_HELP`).
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable

from lit_mrl.errors import DEBUG_ENV, EXIT_CODES_HELP, run_command

__all__ = [
    "EXIT_CODES_HELP",
    "add_debug_flag",
    "fraction",
    "nonnegative_int",
    "positive_float",
    "positive_int",
    "run_main",
]


def _number(text: str, kind: type) -> float:
    try:
        value = kind(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected {'an integer' if kind is int else 'a number'}, got {text!r}"
        ) from None
    if value != value or value in (float("inf"), float("-inf")):  # NaN or Inf
        raise argparse.ArgumentTypeError(f"expected a finite number, got {text!r}")
    return value


def positive_int(text: str) -> int:
    """An integer >= 1 (``--sample-rate``, ``--max-shard-samples``, ``--num-partitions``)."""
    value = int(_number(text, int))
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def nonnegative_int(text: str) -> int:
    """An integer >= 0 (``--workers``: 0 decodes in the main process)."""
    value = int(_number(text, int))
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be at least 0, got {value}")
    return value


def positive_float(text: str) -> float:
    """A finite number > 0 (``--max-seconds``, ``--max-shard-mb``)."""
    value = _number(text, float)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be positive, got {text}")
    return value


def fraction(text: str) -> float:
    """A number in [0, 1) (``--valid-fraction``: 0 makes no validation split)."""
    value = _number(text, float)
    if not 0 <= value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 0 and less than 1, got {text}")
    return value


def add_debug_flag(parser: argparse.ArgumentParser) -> None:
    """Add ``--debug``: show the traceback of an error, not just its one line."""
    parser.add_argument(
        "--debug", action="store_true", help=f"show tracebacks of errors (or {DEBUG_ENV}=1)"
    )


def run_main(
    parse: Callable[[], argparse.Namespace], body: Callable[[argparse.Namespace], int], prog: str
) -> int:
    """Parse the flags, then run ``body(args)`` through :func:`run_command`; returns the exit code.

    Args:
        parse: returns the parsed flags (argparse exits with status 2 on a bad flag).
        body: the command.
        prog: the command's name, the first word of an error line.
    """
    args = parse()
    if getattr(args, "debug", False):
        os.environ[DEBUG_ENV] = "1"
    return run_command(lambda: body(args), prog)
