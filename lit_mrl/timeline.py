"""Embedding timelines: which windows of a track are embedded, and batched embedding of them.

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
from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

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


def track_logmel(frontend: nn.Module, audio: Tensor, chunk_frames: int = 6000) -> Tensor:
    """Log-mel of one track of any length, computed ``chunk_frames`` at a time.

    Equal to ``frontend.logmel(audio)`` on the whole track, with peak memory bounded by
    the chunk: each chunk is computed with ``margin`` extra frames of real audio on both
    sides (dropped afterwards), so only the track's own ends see reflect padding::

        audio  |.......[margin|---- chunk ----|margin].........|
        kept                  |---- chunk ----|

    Args:
        frontend: a :class:`~lit_mrl.models.frontend.LogMelSpectrogram`.
        audio: ``(T,)`` waveform at the frontend's rate, ``T >= hop_length``.
        chunk_frames: frames computed per STFT call (6000 = 60 s).

    Returns:
        ``(n_mels, T // hop_length)``.
    """
    hop, half_fft = frontend.hop_length, frontend.spectrogram.n_fft // 2
    num_frames = audio.shape[-1] // hop
    if audio.shape[-1] <= half_fft:
        # reflect padding needs more than n_fft / 2 samples: pad very short clips with zeros
        audio = nn.functional.pad(audio, (0, half_fft + 1 - audio.shape[-1]))
    if num_frames <= chunk_frames:
        return frontend.logmel(audio[None])[0, :, :num_frames]
    margin = math.ceil(half_fft / hop)  # frames whose STFT window reaches into a neighbour
    chunks = []
    for first in range(0, num_frames, chunk_frames):
        last = min(first + chunk_frames, num_frames)
        lo = max(first - margin, 0) * hop
        hi = min((last + margin) * hop, audio.shape[-1])
        spec = frontend.logmel(audio[None, lo:hi])[0]  # (n_mels, (hi - lo) // hop)
        offset = first - lo // hop
        chunks.append(spec[:, offset : offset + last - first])
    return torch.cat(chunks, dim=1)


@dataclass
class _Track:
    """A track whose windows are being embedded."""

    item: dict[str, Any]
    spec: Tensor | None  # (n_mels, F), released once every window is cut
    starts: Tensor  # (N,)
    timestamps: np.ndarray  # (N,)
    timeline: np.ndarray  # (N, D), filled batch by batch
    remaining: int


class TimelineEmbedder:
    """Embeds tracks window by window, packing the windows of many tracks into batches.

    Each track's log-mel is computed on ``device`` (in chunks, see :func:`track_logmel`);
    its windows join one first-in-first-out queue shared by all tracks, and the encoder
    runs on ``batch_windows`` windows at a time (a smaller last batch). Only the windows
    of the current batch are ever materialised, so track length is not limited; tracks
    come out in input order.

    Args:
        module: a :class:`~lit_mrl.methods.base.PretrainModule` (``frontend``,
            ``encoder``, ``sample_rate``), moved to ``device`` and set to eval mode.
        window_seconds: window length (3 s = 300 frames).
        hop_seconds: distance between window starts (2 s = 200 frames).
        batch_windows: windows per encoder forward.
        device: where the log-mel and the encoder run.
        bf16: run the encoder under bfloat16 autocast (the log-mel stays float32).
        chunk_seconds: audio per STFT call for long tracks.
    """

    def __init__(
        self,
        module: nn.Module,
        window_seconds: float = 3.0,
        hop_seconds: float = 2.0,
        batch_windows: int = 128,
        device: str | torch.device = "cpu",
        bf16: bool = False,
        chunk_seconds: float = 60.0,
    ) -> None:
        self.device = torch.device(device)
        self.module = module.to(self.device).eval()
        frontend = module.frontend
        self.sample_rate = int(module.sample_rate)
        self.frame_rate = frontend.sample_rate / frontend.hop_length
        self.window_frames = seconds_to_frames(window_seconds, self.frame_rate)
        self.hop_frames = seconds_to_frames(hop_seconds, self.frame_rate)
        self.chunk_frames = seconds_to_frames(chunk_seconds, self.frame_rate)
        self.batch_windows = batch_windows
        self.bf16 = bf16
        self.embed_dim = int(module.encoder.embed_dim)

    @torch.inference_mode()
    def encode(self, windows: Tensor) -> Tensor:
        """``(B, n_mels, W)`` standardised windows -> ``(B, embed_dim)`` float32 embeddings."""
        spec = windows.unsqueeze(1)  # (B, 1, n_mels, W)
        if getattr(self.module, "channels_last", False):
            spec = spec.contiguous(memory_format=torch.channels_last)
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.bf16):
            return self.module.encoder(spec).float()

    @torch.inference_mode()
    def start_track(self, item: dict[str, Any]) -> _Track:
        """Compute a track's log-mel and its windows' positions.

        Args:
            item: ``audio`` ``(T,)`` at ``sample_rate`` (tensor or array) and any other
                fields, which are passed through to the output.

        Raises:
            ValueError: for NaN/Inf audio or audio shorter than one frame.
        """
        audio = torch.as_tensor(item["audio"]).to(self.device, torch.float32, non_blocking=True)
        hop = self.module.frontend.hop_length
        if audio.ndim != 1 or audio.shape[0] < hop:
            raise ValueError(
                f"track {item.get('key')!r}: need mono audio of at least one frame "
                f"({hop} samples), got shape {tuple(audio.shape)}"
            )
        if not torch.isfinite(audio).all():
            raise ValueError(f"track {item.get('key')!r}: audio contains NaN or Inf")
        spec = track_logmel(self.module.frontend, audio, self.chunk_frames)
        starts = window_starts(spec.shape[-1], self.window_frames, self.hop_frames)
        rest = {name: value for name, value in item.items() if name != "audio"}
        return _Track(
            item=rest,
            spec=spec,
            starts=torch.from_numpy(starts).to(self.device),
            timestamps=window_centres(starts, spec.shape[-1], self.window_frames, self.frame_rate),
            timeline=np.empty((len(starts), self.embed_dim), dtype=np.float32),
            remaining=len(starts),
        )

    def embed_tracks(self, items: Iterable[dict[str, Any]]) -> Iterator[dict[str, Any]]:
        """Embed a stream of tracks.

        Args:
            items: dicts with ``audio`` ``(T,)`` at ``sample_rate`` plus any fields to
                pass through (``key``, ``label``, ...).

        Yields:
            Per track, in input order: its fields without ``audio``, plus ``embedding``
            ``(D,)`` (mean of the timeline), ``timeline`` ``(N, D)`` and
            ``timestamps`` ``(N,)`` in seconds.
        """
        queue: deque[list] = deque()  # [track, first window not yet batched]
        tracks: deque[_Track] = deque()  # in input order, until finished
        queued = 0
        for item in items:
            track = self.start_track(item)
            tracks.append(track)
            queue.append([track, 0])
            queued += len(track.starts)
            while queued >= self.batch_windows:
                queued -= self._run_batch(queue)
                yield from self._finished(tracks)
        while queued:
            queued -= self._run_batch(queue)
        yield from self._finished(tracks)

    def _run_batch(self, queue: deque[list]) -> int:
        # Take up to batch_windows windows from the head of the queue, spanning tracks.
        pieces, taken = [], 0
        while queue and taken < self.batch_windows:
            track, first = queue[0]
            count = min(len(track.starts) - first, self.batch_windows - taken)
            pieces.append((track, first, count))
            taken += count
            if first + count == len(track.starts):
                queue.popleft()
            else:
                queue[0][1] = first + count
        with torch.inference_mode():
            windows = torch.cat(
                [
                    cut_windows(t.spec, t.starts[first : first + n], self.window_frames)
                    for t, first, n in pieces
                ]
            )
            emb = self.encode(windows).cpu().numpy()  # (taken, D)
        offset = 0
        for track, first, count in pieces:
            track.timeline[first : first + count] = emb[offset : offset + count]
            track.remaining -= count
            offset += count
            if first + count == len(track.starts):
                track.spec = None  # every window is cut: free the spectrogram
        return taken

    def _finished(self, tracks: deque[_Track]) -> Iterator[dict[str, Any]]:
        while tracks and tracks[0].remaining == 0:
            track = tracks.popleft()
            yield {
                **track.item,
                "embedding": track.timeline.mean(axis=0),
                "timeline": track.timeline,
                "timestamps": track.timestamps,
            }
