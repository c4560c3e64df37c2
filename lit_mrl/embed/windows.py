"""Embedding timelines: which windows of a track are embedded, and where they sit.

A track of ``T`` samples has ``F = T // hop_length`` log-mel frames (100 per second at
16 kHz). Windows of ``W`` frames (300 = 3 s) are taken every ``H`` frames (200 = 2 s)::

    frame   0        H        2H               F-W        F
            [-- w0 --]                          [- last -]
                     [-- w1 --]                     ^ ends exactly at frame F
                              [-- w2 --] ...

- ``F > W``: windows start at ``0, H, 2H, ...`` while they end before frame ``F``; one
  last window then ends exactly at frame ``F`` (start ``F - W``). Every frame is in a
  window, none reaches past the track.
- ``F <= W``: exactly one window at frame 0, right-padded with log-mel 0, which is
  silence (``log10(1e4 * 0 + 1) = 0``), then standardised like any other window.
- Timestamp of a window: the centre of the audio it covers, in seconds,
  ``(start + min(start + W, F)) / 2 / frame_rate``.

With the defaults: 1 s -> one window at 0.5 s; 3 s -> one at 1.5 s; 10 s -> five at
1.5, 3.5, 5.5, 7.5, 8.5 s; 95 s -> 47 at 1.5, 3.5, ..., 93.5 s. The released MULE code
centres its first window at 2 s (never seeing the first 0.5 s) and breaks on audio
under about 3 s; this scheme does neither.

The ``"mule"`` timeline (:func:`mule_window_starts`, for imported MULE weights) places
windows as the released code's ``SliceExtractor`` does instead; with its frontend a
track has ``F = 1 + T // hop_length`` frames (301 for 3 s)::

    frame   0    H-W/2   H   H+W/2   2H ...                        F-W/2      F
                 [--- w0 ---]                                 [--- last ---]
                        [--- w1 ---] ...                  centre clamped to F - W/2

- centres at ``H, 2H, 3H, ...`` (every multiple of ``H`` strictly between 0 and ``F``),
  each clamped to ``[W/2, F - W/2]``; a window covers ``[centre - W/2, centre + W/2)``.
  With a hop under ``W/2`` the first centres clamp to ``W/2``: the same window repeats,
  as in MULE (and weighs that much more in the track mean).
- ``F >= W`` with no multiple of ``H`` below ``F``: one window ending at frame ``F``.
- ``F < W`` (under 3 s): MULE crashes or pads by reflection depending on the version;
  lit_mrl cuts one window at frame 0 right-padded with silence, as above.

With the defaults: 3 s (301 frames) -> one window, frames 1..300, at 1.51 s; 6 s -> three
at 2, 4, 4.51 s (MULE's README: shape (1728, 3)); 10 s (1001 frames) -> five at 2, 4, 6,
8, 8.51 s; 95 s -> 47 at 2, 4, ..., 92, 93.51 s.
"""

from __future__ import annotations

import math
from typing import Literal

import numpy as np
import torch
from torch import Tensor, nn


def seconds_to_frames(seconds: float, frame_rate: float) -> int:
    """``seconds`` as a whole number of frames (at least 1)."""
    frames = round(seconds * frame_rate)
    if frames < 1:
        raise ValueError(f"{seconds} s is shorter than one frame at {frame_rate} frames/s")
    return frames


def window_starts(num_frames: int, window_frames: int, hop_frames: int) -> np.ndarray:
    """First frame of every window of a track (see the module docstring).

    Returns:
        ``(N,)`` int64 start frames, ``N >= 1``.
    """
    if num_frames <= window_frames:
        return np.zeros(1, dtype=np.int64)
    count = math.ceil((num_frames - window_frames) / hop_frames) + 1
    starts = np.arange(count, dtype=np.int64) * hop_frames
    starts[-1] = num_frames - window_frames  # the last window ends at the track's end
    return starts


def mule_window_starts(num_frames: int, window_frames: int, hop_frames: int) -> np.ndarray:
    """First frame of every window as MULE's ``SliceExtractor`` places them (module docstring).

    Returns:
        ``(N,)`` int64 start frames, ``N >= 1``, non-decreasing (equal when clamped).
    """
    if num_frames < window_frames:
        return np.zeros(1, dtype=np.int64)
    before = window_frames // 2  # SliceExtractor's look_backward (150)
    after = window_frames - before  # its look_forward (150)
    centres = np.arange(hop_frames, num_frames, hop_frames, dtype=np.int64)
    if len(centres) == 0:
        centres = np.array([num_frames - after], dtype=np.int64)
    return np.clip(centres, before, num_frames - after) - before


Timeline = Literal["lit_mrl", "mule"]
PLACEMENTS = {"lit_mrl": window_starts, "mule": mule_window_starts}


def timeline_starts(
    timeline: Timeline, num_frames: int, window_frames: int, hop_frames: int
) -> np.ndarray:
    """``(N,)`` start frames of a whole track's windows under ``timeline``."""
    return PLACEMENTS[timeline](num_frames, window_frames, hop_frames)


def settled_starts(
    timeline: Timeline, index: int, known_frames: int, window_frames: int, hop_frames: int
) -> list[int]:
    """Starts of windows ``index, index + 1, ...`` that the track's length cannot change.

    For a track still arriving, of which ``known_frames`` frames are known (and the
    track has more): these windows lie within the known frames, and every complete
    track's :func:`timeline_starts` begins with them.
    """
    starts = []
    if timeline == "lit_mrl":  # a window ending at or after the known frames may be the last
        start = index * hop_frames
        while start + window_frames < known_frames:
            starts.append(start)
            start += hop_frames
        return starts
    before = window_frames // 2
    while True:  # centres (k + 1) H; unclamped at the end while the window fits the frames
        start = max((index + 1) * hop_frames, before) - before
        if start + window_frames > known_frames:
            return starts
        starts.append(start)
        index += 1


def window_centres(
    starts: np.ndarray, num_frames: int, window_frames: int, frame_rate: float
) -> np.ndarray:
    """``(N,)`` float64 centre of the audio each window covers, in seconds."""
    ends = np.minimum(starts + window_frames, num_frames)
    return (starts + ends) / 2.0 / frame_rate


def cut_windows(spec: Tensor, starts: Tensor | np.ndarray, window_frames: int) -> Tensor:
    """Cut windows out of a track's log-mel spectrogram (not yet standardised).

    The encoder standardises them (:meth:`~lit_mrl.models.AudioEncoder.standardize`),
    as it does its training clips.

    Args:
        spec: ``(n_mels, F)`` unstandardised log-mel of one track.
        starts: ``(N,)`` first frame of each window.
        window_frames: window length in frames.

    Returns:
        ``(N, n_mels, window_frames)``; frames past the track's end are silence (0).
    """
    if spec.shape[-1] < window_frames:
        spec = nn.functional.pad(spec, (0, window_frames - spec.shape[-1]))
    starts = torch.as_tensor(starts, device=spec.device)
    frames = starts[:, None] + torch.arange(window_frames, device=spec.device)  # (N, W)
    return spec[:, frames].transpose(0, 1)  # (n_mels, N, W) -> (N, n_mels, W)
