"""What every data_prep command line shares: snake_case flags, checked numbers, ``--debug``, exit codes.

Flags are snake_case (``--sample_rate``), like every ``python -m lit_mrl`` command. The
kebab-case spellings of earlier releases (``--sample-rate``) still work for one release:
:class:`FlagParser` rewrites them before parsing and prints one deprecation note per
flag, so ``--help`` lists each flag once and a required flag given in its old spelling
still counts.

Numbers are checked by argparse ``type=`` functions, so ``--workers -1`` is a parse
error naming the option (``argument --workers: must be at least 0, got -1``) before
anything is read or written. Each command's body runs through
:func:`lit_mrl.errors.run_command`, which prints a user error as one line and returns
the shared exit code (see :data:`EXIT_CODES_HELP`).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence

from lit_mrl.errors import DEBUG_ENV, EXIT_CODES_HELP, run_command

__all__ = [
    "EXIT_CODES_HELP",
    "FlagParser",
    "add_debug_flag",
    "default_workers",
    "fraction",
    "nonnegative_int",
    "positive_float",
    "positive_int",
    "run_main",
]


class FlagParser(argparse.ArgumentParser):
    """An argument parser for snake_case flags that still takes their kebab-case spelling.

    ``--max-seconds 5`` and ``--max-seconds=5`` become ``--max_seconds``, with a note on
    stderr: ``python -m data_prep.shard: note: --max-seconds is deprecated, use
    --max_seconds``. Abbreviations are not accepted (``--sample`` is an error), as in
    every lit_mrl command. The description and epilog keep their line breaks.
    """

    def __init__(self, *args, **kwargs) -> None:
        kwargs.setdefault("allow_abbrev", False)
        kwargs.setdefault("formatter_class", argparse.RawDescriptionHelpFormatter)
        super().__init__(*args, **kwargs)

    def parse_known_args(self, args=None, namespace=None):
        args = sys.argv[1:] if args is None else list(args)
        return super().parse_known_args(self._snake_case(args), namespace)

    def _snake_case(self, args: list[str]) -> list[str]:
        known = self._option_string_actions  # every option string this parser defines
        rewritten, noted = [], set()
        for index, arg in enumerate(args):
            if arg == "--":  # what follows is positional
                return rewritten + args[index:]
            flag, equals, value = arg.partition("=")
            snake = "--" + flag[2:].replace("-", "_")
            if flag.startswith("--") and "-" in flag[2:] and flag not in known and snake in known:
                if flag not in noted:
                    print(f"{self.prog}: note: {flag} is deprecated, use {snake}", file=sys.stderr)
                    noted.add(flag)
                arg = snake + equals + value
            rewritten.append(arg)
        return rewritten


def default_workers() -> int:
    """``min(4, CPUs)``: decoding processes when ``--workers`` is not given."""
    return min(4, os.cpu_count() or 1)


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
    """An integer >= 1 (``--sample_rate``, ``--max_shard_samples``, ``--num_partitions``)."""
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
    """A finite number > 0 (``--max_seconds``, ``--max_shard_mb``)."""
    value = _number(text, float)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be positive, got {text}")
    return value


def fraction(text: str) -> float:
    """A number in [0, 1) (``--valid_fraction``: 0 makes no validation split)."""
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


def argv_of(argv: Sequence[str] | None) -> list[str]:
    """``argv`` as a list, or the process's arguments when it is None."""
    return sys.argv[1:] if argv is None else list(argv)
