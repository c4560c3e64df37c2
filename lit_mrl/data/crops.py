"""Cropping tracks into fixed-length clips: random, paired (contrastive) and centred.

A crop is decided from the track's length alone, as a :class:`Span` (which samples of the
track go where in the clip), so a reader can decode just those samples (see
:func:`read_crops`): a 3 s crop of a 4-minute FLAC in a shard costs reading its header,
one seek and 3 s of decoding, not reading or decoding the whole track. Nothing is ever dropped: a track shorter than the crop is
zero-padded (at a random position when cropping randomly, so two views of a short track
still differ). The ``*_crop`` functions apply the same spans to arrays in memory.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import numpy as np
import soundfile as sf

from lit_mrl.formats.shards import FlacRef, decode_error, open_audio


class Span(NamedTuple):
    """Samples ``[start, stop)`` of a track, placed at ``offset`` in a zero clip."""

    start: int
    stop: int
    offset: int


def random_span(length: int, num_samples: int, rng: np.random.Generator) -> Span:
    """A uniformly placed crop of ``num_samples`` of a track of ``length`` samples."""
    if length < num_samples:
        return Span(0, length, int(rng.integers(0, num_samples - length + 1)))
    start = int(rng.integers(0, length - num_samples + 1))
    return Span(start, start + num_samples, 0)


def center_span(length: int, num_samples: int) -> Span:
    """The deterministic crop in the middle of the track (evaluation)."""
    if length < num_samples:
        return Span(0, length, (num_samples - length) // 2)
    start = (length - num_samples) // 2
    return Span(start, start + num_samples, 0)


def paired_spans(
    length: int, num_samples: int, max_offset: int, rng: np.random.Generator
) -> tuple[Span, Span]:
    """Two crops of one track whose centres are at most ``max_offset`` samples apart.

    The first centre is uniform over all valid centres; the second is uniform over the
    valid centres within ``max_offset`` of the first, so positives are temporally close
    (MULE's follow-up papers: within about 5 s).
    """
    if length < num_samples:
        return random_span(length, num_samples, rng), random_span(length, num_samples, rng)
    last_start = length - num_samples
    start_a = int(rng.integers(0, last_start + 1))
    low, high = max(0, start_a - max_offset), min(last_start, start_a + max_offset)
    start_b = int(rng.integers(low, high + 1))
    return Span(start_a, start_a + num_samples, 0), Span(start_b, start_b + num_samples, 0)


def cut(audio: np.ndarray, span: Span, num_samples: int, first: int = 0) -> np.ndarray:
    """The clip of ``span`` from ``audio``, which holds the track from sample ``first`` on."""
    piece = audio[span.start - first : span.stop - first]
    if span.offset == 0 and len(piece) == num_samples:
        return np.ascontiguousarray(piece, dtype=np.float32)
    out = np.zeros(num_samples, dtype=np.float32)
    out[span.offset : span.offset + len(piece)] = piece
    return out


def read_crops(
    source: bytes | FlacRef,
    num_samples: int,
    choose: Callable[[int, int], list[Span]],
) -> list[np.ndarray]:
    """Decode only the samples the crops need: one header read, one seek, one read.

    Args:
        source: encoded audio (a shard's FLAC bytes, or where it lies in its shard);
            channels are averaged.
        num_samples: clip length.
        choose: maps ``(frames, sample rate)`` of the track (from its header, nothing
            decoded) to the spans to cut; it may raise ValueError to refuse the track.

    Returns:
        One ``(num_samples,)`` float32 clip per span, equal to cutting the fully decoded
        track.

    Raises:
        ValueError: undecodable audio, NaN/Inf in the samples read, or ``choose``'s refusal.
        ShardChangedError: (a ValueError) the shard changed since ``source`` was located.
    """
    try:
        with open_audio(source) as raw, sf.SoundFile(raw) as file:
            spans = choose(file.frames, file.samplerate)
            first = min(span.start for span in spans)
            last = max(span.stop for span in spans)
            file.seek(first)
            block = file.read(last - first, dtype="float32", always_2d=True)
    except sf.SoundFileError as err:
        raise decode_error(err, source) from err
    mono = block[:, 0] if block.shape[1] == 1 else block.mean(axis=1, dtype=np.float32)
    if not np.isfinite(mono).all():
        raise ValueError("audio contains NaN or Inf")
    return [cut(mono, span, num_samples, first) for span in spans]


def read_spans(source: bytes | FlacRef, spans: list[Span], num_samples: int) -> list[np.ndarray]:
    """The clips of given spans of encoded audio (see :func:`read_crops`)."""
    return read_crops(source, num_samples, lambda frames, rate: spans)


def random_crop(audio: np.ndarray, num_samples: int, rng: np.random.Generator) -> np.ndarray:
    """``(num_samples,)`` uniformly placed crop of ``(T,)`` audio (see :func:`random_span`)."""
    return cut(audio, random_span(len(audio), num_samples, rng), num_samples)


def center_crop(audio: np.ndarray, num_samples: int) -> np.ndarray:
    """``(num_samples,)`` centre crop of ``(T,)`` audio (see :func:`center_span`)."""
    return cut(audio, center_span(len(audio), num_samples), num_samples)


def paired_crops(
    audio: np.ndarray, num_samples: int, max_offset: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Two ``(num_samples,)`` crops of ``(T,)`` audio at most ``max_offset`` apart."""
    a, b = paired_spans(len(audio), num_samples, max_offset, rng)
    return cut(audio, a, num_samples), cut(audio, b, num_samples)
