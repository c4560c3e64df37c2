"""User errors and exit codes shared by every command.

A mistake in what the user gave (a flag, a file, a field in it) is reported as one line
that names the file, field or value, never as a traceback; ``--debug`` (or
``LIT_MRL_DEBUG=1``) shows the traceback too. Exit codes are the same for every tool:

=====  =====================================================================
0      everything was done
1      some inputs failed; they are listed (``errors.jsonl``), the rest is done
2      usage or environment error (bad option, bad or missing file, output in
       use, configuration that does not fit); nothing more was done
3      out of disk space; free space and rerun the same command to resume
130    interrupted (Ctrl-C); rerun the same command to resume
143    terminated (SIGTERM); rerun the same command to resume
=====  =====================================================================
"""

from __future__ import annotations

import errno
import os
import re
import sys
import traceback
from collections.abc import Callable

EXIT_OK = 0
EXIT_SOME_FAILED = 1
EXIT_USAGE = 2
EXIT_NO_SPACE = 3
EXIT_INTERRUPTED = 130
EXIT_TERMINATED = 143  # 128 + SIGTERM, what a shell reports for a process SIGTERM killed

EXIT_CODES_HELP = """exit status:
  0    everything was done
  1    some inputs failed (listed in errors.jsonl); every good input was done
  2    usage or environment error (bad option, bad or missing file, output in
       use, configuration that does not fit); nothing more was done
  3    out of disk space: free space, then rerun the same command to resume
  130  interrupted (Ctrl-C): rerun the same command to resume (fit: --ckpt_path last.ckpt)
  143  terminated (SIGTERM): as 130
"""

DEBUG_ENV = "LIT_MRL_DEBUG"


class UsageError(Exception):
    """A mistake in the user's input; its message names the file, field or value."""


# Exceptions whose message is the whole story for a user. Anything else (TypeError,
# KeyError, AttributeError, ...) is a bug in lit_mrl and keeps its traceback.
USER_ERRORS: tuple[type[BaseException], ...] = (
    UsageError,
    FileNotFoundError,
    FileExistsError,
    IsADirectoryError,
    NotADirectoryError,
    PermissionError,
    ValueError,
)


def debug_enabled() -> bool:
    """Whether tracebacks are wanted (``--debug`` sets ``LIT_MRL_DEBUG=1``)."""
    return os.environ.get(DEBUG_ENV, "") not in ("", "0")


def is_out_of_space(error: BaseException) -> bool:
    """Whether ``error`` (or its cause) is a full disk or exceeded quota."""
    while error is not None:
        if isinstance(error, OSError) and error.errno in (errno.ENOSPC, errno.EDQUOT):
            return True
        error = error.__cause__ or error.__context__
    return False


# jsonargparse wraps an error raised while building a class of an Optional[...] argument:
# "Does not validate against any of the Union subtypes ... Errors: - <ours> - Expected ..."
_UNION_ERROR = re.compile(r"Union subtypes.*?Errors:\s*-\s*(.*?)\s+-\s+Expected a ", re.S)


def one_line(error: BaseException) -> str:
    """The error's message on one line (a multi-line message is joined)."""
    text = " ".join(str(error).split()) or type(error).__name__
    wrapped = _UNION_ERROR.search(text)
    if wrapped:  # the message of the class that failed, not the parser's dump of its config
        text = wrapped.group(1)
    if isinstance(error, OSError) and error.filename and str(error.filename) not in text:
        text = f"{text}: {error.filename}"
    return text


def run_command(main: Callable[[], int | None], prog: str) -> int:
    """Run a command's body and turn user errors into one line and an exit code.

    Args:
        main: the command; returns its exit code (``None`` means 0).
        prog: the command's name, the first word of every error line.

    Returns:
        The exit code (see the module docstring).
    """
    try:
        return main() or EXIT_OK
    except KeyboardInterrupt:
        print(f"{prog}: interrupted; rerun the same command to resume", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Exception as error:
        if debug_enabled():
            traceback.print_exc()
        if is_out_of_space(error):
            print(
                f"{prog}: error: out of disk space ({one_line(error)}); free space and rerun "
                "the same command to resume",
                file=sys.stderr,
            )
            return EXIT_NO_SPACE
        if not isinstance(error, USER_ERRORS):
            raise
        hint = "" if debug_enabled() else f" (traceback: --debug or {DEBUG_ENV}=1)"
        print(f"{prog}: error: {one_line(error)}{hint}", file=sys.stderr)
        return EXIT_USAGE
