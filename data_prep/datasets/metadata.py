"""Helpers for reading a dataset's own metadata files, and the error they raise.

A problem with the metadata (a missing file, a malformed line) is a
:class:`MetadataError`: one line, ``file:line: why``, exit status 2, before anything
is sharded.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from lit_mrl.errors import UsageError

SPLITS = ("train", "valid", "test")


class MetadataError(UsageError):
    """Missing or malformed dataset metadata; the message starts with ``file:line:``.

    Args:
        path: the metadata file (or folder) at fault.
        message: what is wrong.
        line: 1-based line number, when the fault has one.
    """

    def __init__(self, path: str | Path, message: str, line: int | None = None):
        self.path, self.line = Path(path), line
        where = str(path) if line is None else f"{path}:{line}"
        super().__init__(f"{where}: {message}")


def require_file(path: Path, what: str) -> Path:
    """``path`` if it is a file, else a :class:`MetadataError` naming ``what`` it should be."""
    if not path.is_file():
        raise MetadataError(path, f"missing {what}")
    return path


def read_lines(path: Path, what: str) -> list[tuple[int, str]]:
    """``(line number, stripped text)`` of the non-blank, non-``#`` lines of a text file."""
    text = require_file(path, what).read_text(encoding="utf-8-sig")
    lines = ((number, line.strip()) for number, line in enumerate(text.splitlines(), 1))
    return [(number, line) for number, line in lines if line and not line.startswith("#")]


def read_vocabulary(path: Path) -> list[str]:
    """A label list, one per line, in order; a repeated label is an error."""
    vocabulary: dict[str, int] = {}
    for line, label in read_lines(path, "label list"):
        if label in vocabulary:
            raise MetadataError(path, f"{label!r} repeats line {vocabulary[label]}", line)
        vocabulary[label] = line
    return list(vocabulary)


def stable_fraction(text: str) -> float:
    """A number in ``[0, 1)`` fixed by ``text``: deterministic splits that survive reordering."""
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "big") / 2**64
