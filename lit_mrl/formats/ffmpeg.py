"""FFmpeg decoding through PyAV, for the containers libsndfile does not read.

MP4/M4A (AAC, ALAC), ADTS AAC, WebM/Matroska (Opus, Vorbis, AAC), WMA, AC-3, ... are
what yt-dlp and most downloaders produce. PyAV (``pip install 'lit_mrl[ffmpeg]'``)
ships wheels that bundle their own FFmpeg, so nothing else needs installing;
torchcodec was considered and rejected because it needs a system FFmpeg (and torch,
which data preparation does not import). ``av`` is imported only when a file needs it.

This module only decodes: :func:`open_blocks` gives the native rate and float32
``(frames, channels)`` blocks, and :mod:`lit_mrl.formats.audio` downmixes, resamples and
rounds them exactly as it does libsndfile's.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from itertools import chain
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

EXTRA = "lit_mrl[ffmpeg]"


class Missing(Exception):
    """PyAV is not installed (the ``lit_mrl[ffmpeg]`` extra)."""


class NotDecoded(Exception):
    """FFmpeg could not decode the file; the message is FFmpeg's reason."""


def _import_av() -> ModuleType:
    try:
        import av
    except ImportError as err:  # also a test's sys.modules["av"] = None
        raise Missing(f"install {EXTRA}") from err
    return av


def available() -> bool:
    """Whether PyAV can be imported."""
    try:
        _import_av()
    except Missing:
        return False
    return True


@contextmanager
def open_blocks(
    path: Path, max_seconds: float | None, block_frames: int
) -> Iterator[tuple[int, Iterator[np.ndarray]]]:
    """Open ``path`` with FFmpeg: its first audio stream's rate in Hz and its blocks.

    Blocks are float32 ``(frames, channels)``, at most ``block_frames`` long (shorter
    where the channel count changes mid-stream), the first ``max_seconds`` only.

    Raises:
        Missing: PyAV is not installed.
        NotDecoded: no audio stream, nothing decodable, or a sample rate that changes
            mid-stream; also while the blocks are read.
    """
    av = _import_av()
    try:
        container = av.open(str(path))
    except av.error.FFmpegError as err:
        raise NotDecoded(_reason(err)) from err
    with container:
        if not container.streams.audio:
            raise NotDecoded(f"no audio stream in the {container.format.name} container")
        frames = _frames(av, container, container.streams.audio[0])
        first = next(frames, None)  # decoding one frame tells audio from a lucky probe
        if first is None:
            raise NotDecoded("no audio decoded")
        rate = first.sample_rate
        max_frames = None if max_seconds is None else int(max_seconds * rate)
        yield rate, _blocks(chain([first], frames), rate, max_frames, block_frames)


def _frames(av: ModuleType, container: Any, stream: Any) -> Iterator[Any]:
    try:
        for frame in container.decode(stream):
            if frame.samples:
                yield frame
    except av.error.FFmpegError as err:
        raise NotDecoded(_reason(err)) from err


def _blocks(
    frames: Iterator[Any], rate: int, max_frames: int | None, block_frames: int
) -> Iterator[np.ndarray]:
    pending: list[np.ndarray] = []
    held = total = 0
    for frame in frames:
        if frame.sample_rate != rate:
            raise NotDecoded(f"sample rate changes mid-stream ({rate} -> {frame.sample_rate} Hz)")
        samples = _to_array(frame)
        if max_frames is not None:
            samples = samples[: max_frames - total]
        if pending and samples.shape[1] != pending[0].shape[1]:
            yield np.concatenate(pending)  # blocks keep one channel count each
            pending, held = [], 0
        pending.append(samples)
        held += len(samples)
        total += len(samples)
        while held >= block_frames:  # cut into blocks as soundfile's blocks() does
            joined = np.concatenate(pending)
            yield joined[:block_frames]
            pending, held = [joined[block_frames:]], held - block_frames
        if max_frames is not None and total >= max_frames:
            break
    if held:
        yield np.concatenate(pending)


def _to_array(frame: Any) -> np.ndarray:
    """A decoded frame as float32 ``(samples, channels)``, integers scaled to [-1, 1)."""
    data = frame.to_ndarray()
    channels = len(frame.layout.channels)
    # planar (channels, samples), interleaved (1, samples * channels) -> (samples, channels)
    data = data.T if frame.format.is_planar else data.reshape(-1, channels)
    if data.dtype.kind == "f":
        return data.astype(np.float32)
    if data.dtype == np.uint8:  # 8-bit PCM is offset binary
        return ((data.astype(np.float32) - 128) / 128).astype(np.float32)
    return (data / float(2 ** (8 * data.dtype.itemsize - 1))).astype(np.float32)


def _reason(err: Exception) -> str:
    # PyAV's text is "[Errno N] Invalid data found when processing input: 'path'"
    return getattr(err, "strerror", None) or str(err)
