"""The sharder's decoding workers: one input file -> FLAC bytes, in a process pool.

Decoding is :func:`lit_mrl.formats.audio.read_resampled`, the loader every other part
of lit_mrl uses, so a shard's audio equals :func:`lit_mrl.formats.audio.load_audio` of
its file, bit for bit. A track inside a tar (a foreign WebDataset shard) is copied, a
block at a time, to a temporary file that the same loader decodes by its content.
"""

from __future__ import annotations

import os
import re
import tempfile
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from data_prep.core.rows import TarMember
from lit_mrl.formats.audio import AudioError, read_resampled
from lit_mrl.formats.shards import encode_flac

SHORT_SECONDS = 1.0
SILENT_PEAK = 0.5 / 32768  # rounds to digital silence in PCM_16
COPY_BLOCK = 1 << 20  # bytes copied at a time from a tar member


def prepare(
    job: tuple[Path, TarMember | None, int, float | None],
) -> tuple[bytes, int, list[str]] | str:
    """Worker: ``(flac, num_samples, warnings)``, or the reason the file is unusable.

    Args:
        job: ``(path, tar member or None, sample_rate in Hz, max_seconds or None)``.
    """
    path, member, sample_rate, max_seconds = job
    try:
        if member is None:
            audio = read_resampled(path, sample_rate, max_seconds)
        else:
            with member_file(path, member) as file:
                audio = read_resampled(file, sample_rate, max_seconds)
    except AudioError as err:
        return err.reason
    warnings = []
    peak = float(np.abs(audio).max())
    if peak < SILENT_PEAK:
        warnings.append("silent")
    if peak > 1.0:  # seen before encode_flac rounds to PCM_16, which clips
        warnings.append("clipped")
    if len(audio) < SHORT_SECONDS * sample_rate:
        warnings.append("short")
    return encode_flac(audio, sample_rate), len(audio), warnings


@contextmanager
def member_file(tar: Path, member: TarMember) -> Iterator[Path]:
    """A temporary file holding ``member``'s bytes (copied in blocks; removed afterwards)."""
    # the extension only as a hint (FFmpeg's for raw streams); the content decides
    suffix = Path(member.name).suffix
    suffix = suffix if re.fullmatch(r"\.[A-Za-z0-9]{1,10}", suffix) else ""
    with tempfile.TemporaryDirectory(prefix="data_prep_member_") as folder:
        path = Path(folder) / f"member{suffix}"
        with open(tar, "rb") as source, open(path, "wb") as target:
            source.seek(member.offset)
            left = member.size
            while left > 0:
                block = source.read(min(COPY_BLOCK, left))
                if not block:
                    break  # cut off: the decoder reports what is left
                target.write(block)
                left -= len(block)
        yield path


def ordered_map(fn: Callable[[Any], Any], jobs: Iterable[Any], workers: int) -> Iterator[Any]:
    """``map(fn, jobs)`` over ``workers`` processes (0: in this one), in order, with few results held."""
    if workers == 0:
        yield from map(fn, jobs)
        return
    with ProcessPoolExecutor(
        workers, initializer=_exit_with_parent, initargs=(os.getpid(),)
    ) as pool:
        pending = deque()
        try:
            for job in jobs:
                pending.append(pool.submit(fn, job))
                if len(pending) >= 4 * workers:
                    yield pending.popleft().result()
            while pending:
                yield pending.popleft().result()
        finally:
            pool.shutdown(cancel_futures=True)


def _exit_with_parent(parent: int) -> None:
    # pool workers otherwise outlive a kill -9 of the main process, blocked on their queue
    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(1.0)
        os._exit(1)

    threading.Thread(target=watch, daemon=True).start()
