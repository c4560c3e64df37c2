"""``python -m data_prep [COMMAND] ...``: list the commands, or run one.

``python -m data_prep gtzan --root ...`` is ``python -m data_prep.datasets.gtzan --root
...``; ``shard`` and ``verify`` are the sharder and the checker.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Sequence

from data_prep.datasets import ADAPTERS

TOOLS = ("shard", "verify")


def module_of(command: str) -> str:
    """The module a command runs."""
    return f"data_prep.{command}" if command in TOOLS else f"data_prep.datasets.{command}"


def summary(command: str) -> str:
    """The first line of the command's docstring, up to its usage example."""
    doc = importlib.import_module(module_of(command)).__doc__ or ""
    return doc.strip().splitlines()[0].split(": ``")[0].rstrip(".")


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``argv[0]`` with the other arguments, or list the commands; the exit status."""
    argv = sys.argv[1:] if argv is None else list(argv)
    commands = (*TOOLS, *ADAPTERS)
    if argv and argv[0] in commands:
        return importlib.import_module(module_of(argv[0])).main(argv[1:])
    lines = ["usage: python -m data_prep COMMAND [ARGS...]  (COMMAND --help for its flags)", ""]
    lines += [f"  {command:<11} {summary(command)}" for command in commands]
    known = not argv or argv[0] in ("-h", "--help")
    print("\n".join(lines), file=sys.stdout if known else sys.stderr)
    if not known:
        print(f"python -m data_prep: error: unknown command {argv[0]!r}", file=sys.stderr)
    return 0 if known else 2


if __name__ == "__main__":
    sys.exit(main())
