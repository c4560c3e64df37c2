"""Writing output files safely: atomic replacement and one writer per output folder.

Every file lit_mrl writes for later reading (shards, ``info.json``, embedding parts and
their index, probe results) goes through :func:`atomic_file`: it is written under a
temporary name, flushed and fsynced, renamed over the final name, and the folder is
fsynced, so a file with its final name is always complete, even after a crash or a
full disk.
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

from lit_mrl.errors import UsageError

TMP_SUFFIX = ".tmp"


def fsync_dir(folder: str | Path) -> None:
    """Make renames inside ``folder`` durable (skipped where folders cannot be opened)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextmanager
def atomic_file(path: str | Path) -> Iterator[BinaryIO]:
    """Open ``path + ".tmp"`` for binary writing; on success it replaces ``path``.

    If the block raises, the temporary file is deleted and ``path`` is untouched.
    """
    path = Path(path)
    tmp = path.with_name(path.name + TMP_SUFFIX)
    try:
        with open(tmp, "wb") as file:
            yield file
            file.flush()
            os.fsync(file.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)


def atomic_write(path: str | Path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically (see :func:`atomic_file`)."""
    with atomic_file(path) as file:
        file.write(data)


@contextmanager
def lock_dir(folder: str | Path, name: str, what: str) -> Iterator[None]:
    """Hold an exclusive lock on ``folder/.{name}.lock`` while the block runs.

    The operating system drops the lock when the process dies, so a crash never leaves a
    folder locked. A POSIX record lock (unlike ``flock``) is not inherited by forked
    worker processes.

    Args:
        folder: the output folder (must exist).
        name: lock name (one lock per name).
        what: what the holder does, for the error message (``"a sharder"``).

    Raises:
        UsageError: another process holds the lock.
    """
    with open(Path(folder) / f".{name}.lock", "w") as file:
        try:
            fcntl.lockf(file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as err:
            raise UsageError(f"{folder} is in use: {what} is writing there") from err
        yield
