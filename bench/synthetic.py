"""Synthetic audio, audio files and shard datasets for the benchmarks (made per run).

Tracks are a little noise plus three tones with a slow vibrato. The tone phase has a
closed form, so a track of any length is made block by block (a 54-minute track never
sits in memory as float64) and every block continues the previous one exactly.
"""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import soundfile as sf

from lit_mrl.formats.audio import pcm16_to_float, quantize_pcm16
from lit_mrl.formats.info import DatasetInfo, SplitInfo, write_info
from lit_mrl.formats.shard_writer import ShardWriter
from lit_mrl.formats.shards import encode_flac

SAMPLE_RATE = 16000
BLOCK_SECONDS = 60.0


class ToneNoise:
    """One synthetic track: Gaussian noise plus three vibrato tones, peak below 1.

    Args:
        rng: draws the tones (frequency, vibrato rate and depth, level).
        sample_rate: in Hz.
        noise: noise standard deviation. FLAC of a 4-minute track is about 6 MB at 16 kHz
            (5.7 MB even at 0.01: the vibrato tones cost most of the bits), in the range
            of real music.
    """

    def __init__(
        self, rng: np.random.Generator, sample_rate: int = SAMPLE_RATE, noise: float = 0.03
    ) -> None:
        self.rng = rng
        self.sample_rate = sample_rate
        self.noise = noise
        self.freqs = rng.uniform(100.0, 4000.0, 3)
        self.rates = rng.uniform(0.1, 2.0, 3)  # vibrato, Hz
        self.depths = rng.uniform(0.0, 0.05, 3)  # relative frequency swing
        self.levels = rng.uniform(0.1, 0.25, 3)

    def block(self, start: int, num_samples: int) -> np.ndarray:
        """Samples ``[start, start + num_samples)`` as float32 on the PCM_16 grid."""
        t = (start + np.arange(num_samples)) / self.sample_rate
        audio = self.noise * self.rng.standard_normal(num_samples)
        for f, rate, depth, level in zip(
            self.freqs, self.rates, self.depths, self.levels, strict=True
        ):
            # instantaneous frequency f * (1 + depth * sin(2 pi rate t)), integrated
            phase = 2 * np.pi * f * t - f * depth / rate * np.cos(2 * np.pi * rate * t)
            audio += level * np.sin(phase)
        return pcm16_to_float(quantize_pcm16(audio))

    def blocks(self, seconds: float, block_seconds: float = BLOCK_SECONDS) -> Iterator[np.ndarray]:
        """The first ``seconds`` of the track in blocks of ``block_seconds``."""
        total, step = round(seconds * self.sample_rate), round(block_seconds * self.sample_rate)
        for start in range(0, total, step):
            yield self.block(start, min(step, total - start))

    def audio(self, seconds: float) -> np.ndarray:
        """The first ``seconds`` of the track, ``(T,)`` float32."""
        return np.concatenate(list(self.blocks(seconds)))


def synthetic_tracks(count: int, seconds: float, seed: int = 0) -> list[np.ndarray]:
    """``count`` tracks of ``seconds`` each, ``(T,)`` float32 at 16 kHz."""
    rng = np.random.default_rng(seed)
    return [ToneNoise(rng).audio(seconds) for _ in range(count)]


def write_flac(path: Path, seconds: float, seed: int = 0) -> Path:
    """Write one mono 16 kHz PCM_16 FLAC of ``seconds``, block by block."""
    path.parent.mkdir(parents=True, exist_ok=True)
    track = ToneNoise(np.random.default_rng(seed))
    with sf.SoundFile(path, "w", SAMPLE_RATE, 1, "PCM_16", format="FLAC") as file:
        for block in track.blocks(seconds):
            file.write(block)
    return path


def _encoded_track(job: tuple[int, float, int, list[str]]) -> tuple[str, bytes, dict]:
    index, seconds, seed, tags = job
    rng = np.random.default_rng([seed, index])
    audio = ToneNoise(rng).audio(seconds)
    labels = [tag for tag in tags if rng.random() < 0.25]  # drawn after the audio
    if tags and not labels:
        labels = [tags[index % len(tags)]]
    meta = {
        "track_id": f"track_{index:05d}",
        "labels": labels,
        "duration": len(audio) / SAMPLE_RATE,
    }
    return f"track_{index:05d}", encode_flac(audio, SAMPLE_RATE), meta


def write_track_shards(
    root: Path,
    tracks: int,
    seconds: float,
    per_shard: int,
    seed: int = 0,
    split: str = "train",
    processes: int | None = None,
    tags: list[str] | None = None,
) -> DatasetInfo:
    """A dataset of ``tracks`` synthetic tracks of ``seconds``.

    Without ``tags`` the task is ``none`` (no labels); with them ``multilabel``, each
    track tagged with a random non-empty subset (each tag with probability 1/4).

    Tracks are made and FLAC-encoded by ``processes`` workers and written in order,
    ``per_shard`` to a shard; track ``i`` depends only on ``seed`` and ``i``. By default
    half the CPUs work when there is more than 20 minutes of audio (on two busy cores,
    starting a pool costs more than it saves: this process does it all).
    """
    tags = list(tags or [])
    jobs = [(i, seconds, seed, tags) for i in range(tracks)]
    if processes is None:
        processes = max(1, (os.cpu_count() or 1) // 2) if tracks * seconds > 1200 else 1
    with ShardWriter(root, "synthetic", split, max_samples=per_shard) as writer:
        if processes == 1:
            for sample in map(_encoded_track, jobs):
                writer.write(*sample)
        else:
            with multiprocessing.get_context("spawn").Pool(processes) as pool:
                for sample in pool.imap(_encoded_track, jobs):
                    writer.write(*sample)
    entry = SplitInfo(
        num_samples=writer.num_samples,
        seconds=round(sum(writer.shard_seconds), 3),
        shards=writer.shards,
        shard_num_samples=writer.shard_num_samples,
    )
    task = "multilabel" if tags else "none"
    info = DatasetInfo("synthetic", SAMPLE_RATE, task, tags, {split: entry}, entry.seconds)
    write_info(root, info)
    return info
