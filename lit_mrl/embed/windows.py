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
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import Tensor, nn

from lit_mrl.models.frontend import standardize


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


def window_centres(
    starts: np.ndarray, num_frames: int, window_frames: int, frame_rate: float
) -> np.ndarray:
    """``(N,)`` float64 centre of the audio each window covers, in seconds."""
    ends = np.minimum(starts + window_frames, num_frames)
    return (starts + ends) / 2.0 / frame_rate


def cut_windows(spec: Tensor, starts: Tensor | np.ndarray, window_frames: int) -> Tensor:
    """Cut standardised windows out of a track's log-mel spectrogram.

    Args:
        spec: ``(n_mels, F)`` unstandardised log-mel of one track.
        starts: ``(N,)`` first frame of each window.
        window_frames: window length in frames.

    Returns:
        ``(N, n_mels, window_frames)``, each window standardised on its own; frames
        past the track's end are silence (0) before standardisation.
    """
    if spec.shape[-1] < window_frames:
        spec = nn.functional.pad(spec, (0, window_frames - spec.shape[-1]))
    starts = torch.as_tensor(starts, device=spec.device)
    frames = starts[:, None] + torch.arange(window_frames, device=spec.device)  # (N, W)
    return standardize(spec[:, frames].transpose(0, 1))  # (n_mels, N, W) -> (N, n_mels, W)
