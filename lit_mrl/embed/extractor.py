"""Batched embedding of track timelines, streamed block by block in bounded memory.

Which windows a track has, and their timestamps, is :mod:`lit_mrl.embed.windows`. Tracks
arrive as audio blocks (a short track is one block); each block's log-mel frames are
computed as soon as every sample their STFT needs has arrived, every window whose frames
are complete is cut, standardised and queued, and frames and samples nothing needs any
more are dropped. Windows of all tracks share one queue and the encoder runs on
``batch_windows`` of them at a time. Memory therefore grows with the block size and the
batch, never with track length; the frames equal those of the whole track's log-mel
(:meth:`~lit_mrl.models.frontend.LogMelSpectrogram.track_logmel`), so a 54-minute track
embeds exactly as if it had been decoded whole.
"""

from __future__ import annotations

import math
from collections import OrderedDict, deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import Tensor

from lit_mrl.embed.windows import (
    cut_windows,
    seconds_to_frames,
    settled_starts,
    timeline_starts,
    window_centres,
)
from lit_mrl.models.audio_encoder import AudioEncoder

AUDIO_FIELDS = ("audio", "block", "start", "last", "track")


@dataclass
class _Track:
    """A track being embedded: its sample and frame buffers and its windows so far."""

    item: dict[str, Any]  # fields passed through to the output
    samples: Tensor  # audio samples [sample_start, sample_start + len) of the track
    sample_start: int = 0
    frames: Tensor | None = None  # (n_mels, n) log-mel frames [frame_start, next_frame)
    frame_start: int = 0
    next_frame: int = 0  # first frame not yet computed
    starts: list[int] = field(default_factory=list)  # first frame of each queued window
    rows: list[np.ndarray] = field(default_factory=list)  # (D,) embeddings, in window order
    queued: int = 0  # windows in the queue, not yet embedded
    done: bool = False  # the last block has arrived
    num_frames: int | None = None  # F, known once done
    failed: bool = False


class TimelineEmbedder:
    """Embeds tracks window by window, packing the windows of many tracks into batches.

    Windows are placed as the encoder's frontend says
    (:attr:`~lit_mrl.models.AudioEncoder.timeline`): lit_mrl's scheme, or the released
    MULE code's for imported MULE weights (:mod:`lit_mrl.embed.windows`).

    Args:
        audio_encoder: waveform-to-embedding model, moved to ``device`` and set to eval
            mode.
        window_seconds: window length (default: the encoder's embedding rule, 3 s = 300
            frames).
        hop_seconds: distance between window starts (default: the encoder's rule, 2 s).
        batch_windows: windows per encoder forward.
        device: where the log-mel and the encoder run.
        bf16: run the encoder under bfloat16 autocast (the log-mel stays float32).
        chunk_seconds: audio per STFT call when a whole track is given at once.
    """

    def __init__(
        self,
        audio_encoder: AudioEncoder,
        window_seconds: float | None = None,
        hop_seconds: float | None = None,
        batch_windows: int = 128,
        device: str | torch.device = "cpu",
        bf16: bool = False,
        chunk_seconds: float = 60.0,
    ) -> None:
        self.device = torch.device(device)
        self.audio_encoder = audio_encoder.to(self.device).eval()
        self.sample_rate = audio_encoder.sample_rate
        self.frame_rate = audio_encoder.frame_rate
        self.window_seconds = window_seconds or audio_encoder.window_seconds
        self.hop_seconds = hop_seconds or audio_encoder.hop_seconds
        self.window_frames = seconds_to_frames(self.window_seconds, self.frame_rate)
        self.hop_frames = seconds_to_frames(self.hop_seconds, self.frame_rate)
        self.chunk_samples = round(chunk_seconds * self.sample_rate)
        self.batch_windows = batch_windows
        self.bf16 = bf16
        self.embed_dim = audio_encoder.embed_dim
        self.min_samples = audio_encoder.min_samples
        self.hop_length = audio_encoder.hop_length  # samples per frame
        self.timeline = audio_encoder.timeline
        # frames an STFT window reaches across on either side of its centre
        self.margin = math.ceil(audio_encoder.fft_size / 2 / self.hop_length)
        self._whole_tracks = 0

    @torch.inference_mode()
    def encode(self, windows: Tensor) -> Tensor:
        """``(B, n_mels, W)`` standardised windows -> ``(B, embed_dim)`` float32 embeddings."""
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.bf16):
            return self.audio_encoder.encode(windows).float()

    def embed_tracks(self, items: Iterable[dict[str, Any]]) -> Iterator[dict[str, Any]]:
        """Embed a stream of tracks, given whole or in blocks.

        Args:
            items: whole tracks, ``{"audio": (T,), ...}``, or blocks, ``{"key", "block":
                (t,), "start": first sample, "last": bool, ...}`` in order per track (blocks
                of different tracks may interleave); other fields pass through. An item
                with ``error`` for a key with open blocks abandons that track.

        Yields:
            Per track, in the order tracks started: its fields, plus ``embedding`` ``(D,)``
            (mean of the timeline), ``timeline`` ``(N, D)`` and ``timestamps`` ``(N,)``.

        Raises:
            ValueError: for NaN/Inf audio or a track shorter than one frame.
        """
        tracks: OrderedDict[Any, _Track] = OrderedDict()  # in start order, until finished
        queue: deque[tuple[_Track, int, Tensor]] = deque()  # (track, window index, window)
        for item in items:
            if "error" in item:
                track = tracks.get(item.get("key"))
                if track is not None:
                    track.failed = True  # its queued windows are embedded, then dropped
                continue
            for block_item in self._blocks(item):
                self._add_block(tracks, queue, block_item)
                while len(queue) >= self.batch_windows:
                    self._run_batch(queue)
                yield from self._finished(tracks)
        while queue:
            self._run_batch(queue)
        yield from self._finished(tracks)

    def _blocks(self, item: dict[str, Any]) -> Iterator[dict[str, Any]]:
        if "block" in item:
            yield item
            return
        audio, rest = item["audio"], {k: v for k, v in item.items() if k != "audio"}
        self._whole_tracks += 1
        track = ("whole", self._whole_tracks)  # its own identity, whatever its key
        for start in range(0, max(len(audio), 1), self.chunk_samples):
            block = audio[start : start + self.chunk_samples]
            last = start + self.chunk_samples >= len(audio)
            yield {**rest, "track": track, "block": block, "start": start, "last": last}

    @torch.inference_mode()
    def _add_block(self, tracks: OrderedDict, queue: deque, item: dict[str, Any]) -> None:
        key = item.get("key")
        identity = item.get("track", key)
        block = torch.as_tensor(item["block"]).to(self.device, torch.float32)
        if block.ndim != 1:
            raise ValueError(f"track {key!r}: need mono audio, got shape {tuple(block.shape)}")
        if not torch.isfinite(block).all():
            raise ValueError(f"track {key!r}: audio contains NaN or Inf")
        track = tracks.get(identity)
        if item["start"] == 0:
            if track is not None:
                raise ValueError(f"track {key!r} appears twice in the input")
            fields = {k: v for k, v in item.items() if k not in AUDIO_FIELDS}
            track = tracks[identity] = _Track(item=fields, samples=block[:0])
        elif track is None:
            raise ValueError(f"track {key!r}: a block at sample {item['start']} without its start")
        track.samples = torch.cat([track.samples, block])
        if item["last"]:
            total = track.sample_start + len(track.samples)
            if total < self.min_samples:
                raise ValueError(
                    f"track {key!r}: need at least one frame ({self.min_samples} samples), "
                    f"got {total}"
                )
            track.done, track.num_frames = True, self.audio_encoder.num_frames(total)
        self._compute_frames(track)
        self._queue_windows(track, queue)

    def _compute_frames(self, track: _Track) -> None:
        """Log-mel frames whose STFT window lies in the samples received (all, at the end)."""
        hop, end = self.hop_length, track.sample_start + len(track.samples)
        last = track.num_frames if track.done else end // hop - self.margin
        if last <= track.next_frame:
            return
        first = track.next_frame
        lo = max(first - self.margin, 0) * hop
        hi = end if track.done else min((last + self.margin) * hop, end)
        audio = track.samples[lo - track.sample_start : hi - track.sample_start]
        # one STFT call: the chunk is at most a block plus margins (the frontend zero-pads
        # a whole track too short for reflect padding)
        spec = self.audio_encoder.track_logmel(audio, chunk_frames=10**9)
        offset = first - lo // hop
        new = spec[:, offset : offset + last - first]
        track.frames = new if track.frames is None else torch.cat([track.frames, new], dim=1)
        track.next_frame = last
        # keep the samples the next frames' STFTs reach back to
        keep_from = max(last - self.margin, 0) * hop
        track.samples = track.samples[keep_from - track.sample_start :]
        track.sample_start = keep_from

    def _queue_windows(self, track: _Track, queue: deque) -> None:
        """Cut every window whose frames are complete; drop frames no window needs."""
        width, hop = self.window_frames, self.hop_frames
        if track.done:
            starts = timeline_starts(self.timeline, track.num_frames, width, hop).tolist()
            new = starts[len(track.starts) :]
        else:  # windows that the frames still to come cannot move
            new = settled_starts(self.timeline, len(track.starts), track.next_frame, width, hop)
        if new:
            windows = self.audio_encoder.standardize(
                cut_windows(track.frames, np.asarray(new) - track.frame_start, width)
            )
            for start, window in zip(new, windows, strict=True):
                queue.append((track, len(track.starts), window))
                track.starts.append(start)
                track.rows.append(np.empty(0))
            track.queued += len(new)
        if track.done:
            track.frames = None
            return
        # later windows start after the last one queued (MULE's: at or after): keep from there
        after = int(self.timeline == "lit_mrl")
        keep = track.starts[-1] + after if track.starts else 0
        drop = keep - track.frame_start
        if track.frames is not None and drop > 0:
            track.frames = track.frames[:, drop:]
            track.frame_start += drop

    def _run_batch(self, queue: deque) -> None:
        taken = [queue.popleft() for _ in range(min(self.batch_windows, len(queue)))]
        emb = self.encode(torch.stack([window for _, _, window in taken])).cpu().numpy()
        for (track, index, _), row in zip(taken, emb, strict=True):
            track.rows[index] = row
            track.queued -= 1

    def _finished(self, tracks: OrderedDict) -> Iterator[dict[str, Any]]:
        while tracks:
            key, track = next(iter(tracks.items()))
            if not (track.done or track.failed) or track.queued:
                return
            del tracks[key]
            if track.failed:
                continue
            timeline = np.stack(track.rows).astype(np.float32)
            starts = np.asarray(track.starts)
            yield {
                **track.item,
                "embedding": timeline.mean(axis=0),
                "timeline": timeline,
                "timestamps": window_centres(
                    starts, track.num_frames, self.window_frames, self.frame_rate
                ),
            }
