"""Batched timeline extraction vs the released code's per-file, per-window loop.

Both embed the same synthetic tracks (:mod:`bench.synthetic`) with the same
:class:`~lit_mrl.models.AudioEncoder` and the same windows (3 s every 2 s, see
:mod:`lit_mrl.embed.windows`); the outputs are checked to agree, then tracks/s and the
speed-up are printed::

    python -m bench.embed_speed --tracks 16 --seconds 30 --encoder sfnfnet-tiny --threads 1
    python -m bench.embed_speed --tracks 2 --seconds 30 --encoder sfnfnet --threads 1

The loop is MULE's inference: for each file, the whole log-mel, then for each window
one standardised slice through the encoder with batch size 1. The batched way is
:class:`lit_mrl.embed.extractor.TimelineEmbedder`, what ``python -m lit_mrl embed`` runs
(here on tracks in memory: no decoding, no loader).
"""

from __future__ import annotations

import argparse
import resource
import time

import numpy as np
import torch

from bench.synthetic import synthetic_tracks
from lit_mrl.embed.extractor import TimelineEmbedder
from lit_mrl.embed.windows import window_starts
from lit_mrl.models import AudioEncoder, SmallCNN, standardize
from lit_mrl.models.sfnfnet import SFNFNetF0

ENCODERS = {
    "smallcnn": lambda: SmallCNN([16, 32, 64]),
    "sfnfnet-tiny": SFNFNetF0.tiny,
    "sfnfnet": SFNFNetF0,
}


@torch.inference_mode()
def per_window_loop(embedder: TimelineEmbedder, tracks: list[np.ndarray]) -> list[np.ndarray]:
    """Timeline ``(N, D)`` of each track, one encoder call per window."""
    audio_encoder, width = embedder.audio_encoder, embedder.window_frames
    timelines = []
    for audio in tracks:
        spec = audio_encoder.track_logmel(torch.from_numpy(audio).to(embedder.device))
        rows = []
        for start in window_starts(spec.shape[1], width, embedder.hop_frames):
            window = standardize(spec[:, start : start + width])  # (n_mels, W)
            rows.append(audio_encoder.encode(window[None])[0].float().cpu())
        timelines.append(torch.stack(rows).numpy())
    return timelines


def batched(embedder: TimelineEmbedder, tracks: list[np.ndarray]) -> list[np.ndarray]:
    """Timeline ``(N, D)`` of each track, windows of all tracks packed into batches."""
    items = ({"key": str(i), "audio": audio} for i, audio in enumerate(tracks))
    return [row["timeline"] for row in embedder.embed_tracks(items)]


def timed(fn, *args) -> tuple[list[np.ndarray], float]:
    """Result and wall seconds of ``fn(*args)`` (CUDA work included)."""
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    start = time.perf_counter()
    result = fn(*args)
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    return result, time.perf_counter() - start


def main(args: list[str] | None = None) -> None:
    """Run the benchmark and print tracks/s of both ways and their ratio."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tracks", type=int, default=16)
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--encoder", choices=sorted(ENCODERS), default="sfnfnet-tiny")
    parser.add_argument("--batch-windows", type=int, default=128)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    parser.add_argument("--long-minutes", type=float, default=0, help="also embed one long track")
    opts = parser.parse_args(args)
    if opts.threads:
        torch.set_num_threads(opts.threads)
    torch.manual_seed(0)
    audio_encoder = AudioEncoder(ENCODERS[opts.encoder]())
    embedder = TimelineEmbedder(audio_encoder, batch_windows=opts.batch_windows, device=opts.device)
    tracks = synthetic_tracks(opts.tracks, opts.seconds)
    warm = synthetic_tracks(1, 3.0, seed=1)
    per_window_loop(embedder, warm), batched(embedder, warm)  # first-call costs

    loop_out, loop_s = timed(per_window_loop, embedder, tracks)
    batch_out, batch_s = timed(batched, embedder, tracks)
    scale = max(float(np.abs(np.concatenate(loop_out)).max()), 1.0)
    for got, want in zip(batch_out, loop_out, strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-3, atol=1e-4 * scale)
    windows = sum(len(t) for t in loop_out)
    params = sum(p.numel() for p in audio_encoder.encoder.parameters())
    print(
        f"encoder {opts.encoder} ({params / 1e6:.2f} M params, embed_dim "
        f"{embedder.embed_dim}) on {opts.device}, {torch.get_num_threads()} CPU threads; "
        f"{opts.tracks} tracks x {opts.seconds:g} s = {windows} windows; outputs agree"
    )
    print(f"per-window loop (batch 1): {loop_s:8.2f} s  {opts.tracks / loop_s:8.2f} tracks/s")
    print(
        f"batched ({opts.batch_windows} windows): {batch_s:8.2f} s  "
        f"{opts.tracks / batch_s:8.2f} tracks/s"
    )
    print(f"speed-up: {loop_s / batch_s:.1f}x")
    if opts.long_minutes:
        # tiled from 30 s so that making it does not itself set the memory peak
        repeats = int(np.ceil(opts.long_minutes * 2))
        long_track = [np.tile(synthetic_tracks(1, 30.0, seed=2)[0], repeats)]
        # ru_maxrss is the peak so far (KiB): making the track must not count
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        (long_out,), long_s = timed(batched, embedder, long_track)
        after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        print(
            f"one {opts.long_minutes:g}-min track ({long_track[0].nbytes / 2**20:.0f} MiB of "
            f"audio): {len(long_out)} windows in {long_s:.1f} s, peak RSS grew by "
            f"{(after - before) / 1024:.0f} MiB"
        )


if __name__ == "__main__":
    main()
