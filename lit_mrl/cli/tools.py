"""Run a tool (a typed function) from the command line, the way the Lightning CLI parses.

The function's signature and Google docstring are the parser (jsonargparse): every
parameter is ``--name`` (snake_case), numeric restrictions such as ``PositiveInt`` are
checked at parse time, ``--config FILE`` reads the same options from YAML (strictly:
unknown keys are errors), ``--print_config`` shows the resolved options, and options
are never abbreviated. The function's body runs under
:func:`lit_mrl.errors.run_command`, so user errors are one line.
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Callable

from lit_mrl.errors import run_command


def build_parser(
    function: Callable[..., int | None], prog: str, positional: tuple[str, ...] = ()
) -> object:
    """The jsonargparse parser of ``function``.

    ``positional`` names list parameters taken as positional arguments (``report RESULTS...``).
    """
    from jsonargparse import ActionConfigFile, ArgumentParser

    description = inspect.getdoc(function) or ""
    parser = ArgumentParser(
        prog=prog,
        description=description.split("\n\nArgs:")[0],
        allow_abbrev=False,
        exit_on_error=True,
    )
    # --config also brings --print_config
    parser.add_argument("--config", action=ActionConfigFile, help="options from a YAML file")
    for name in positional:
        parameter = inspect.signature(function).parameters[name]
        required = parameter.default is inspect.Parameter.empty
        parser.add_argument(
            name, nargs="+" if required else "*", type=str, help=_arg_help(function, name)
        )
    parser.add_function_arguments(function, as_positional=False, skip=set(positional))
    return parser


def _arg_help(function: Callable[..., object], name: str) -> str:
    doc = inspect.getdoc(function) or ""
    for line in doc.splitlines():
        if line.strip().startswith(f"{name}:"):
            return line.split(":", 1)[1].strip()
    return ""


def run_tool(
    module: str, function: str, args: list[str], prog: str, positional: tuple[str, ...] = ()
) -> int:
    """Parse ``args`` for ``module.function`` and run it; returns the exit code."""
    target = getattr(importlib.import_module(module), function)
    parser = build_parser(target, prog, positional)
    config = parser.parse_args(args)  # exits 2 with a usage line on a bad option
    built = parser.instantiate_classes(config)  # option groups become their dataclasses
    names = [n for n in inspect.signature(target).parameters if n in built]
    options = {name: built[name] for name in names}
    return run_command(lambda: target(**options), prog)
