"""The sharder's decoding workers: one input file -> FLAC bytes, in a process pool.

Decoding is :func:`lit_mrl.formats.audio.read_resampled`, the loader every other part
of lit_mrl uses, so a shard's audio equals :func:`lit_mrl.formats.audio.load_audio` of
its file, bit for bit.
"""

from __future__ import annotations

import os
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from lit_mrl.formats.audio import AudioError, read_resampled
from lit_mrl.formats.shards import encode_flac

SHORT_SECONDS = 1.0
SILENT_PEAK = 0.5 / 32768  # rounds to digital silence in PCM_16


def prepare(job: tuple[Path, int, float | None]) -> tuple[bytes, int, list[str]] | str:
    """Worker: ``(flac, num_samples, warnings)``, or the reason the file is unusable.

    Args:
        job: ``(path, sample_rate in Hz, max_seconds or None)``.
    """
    path, sample_rate, max_seconds = job
    try:
        audio = read_resampled(path, sample_rate, max_seconds)
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
