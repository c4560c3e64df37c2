"""Synthetic probe tasks for the probe benchmarks, made at run time (nothing downloaded).

* :func:`pitch_task`: about 600 single notes, 36 MIDI pitches (48-83) on 8 synthetic
  instrument families, as the log-mel baseline embeds them: the mean and the std over
  time of 96 log-mel bands (192-d), like the demo's pitch task. Each note is a harmonic
  series with a family-specific spectral envelope, a random loudness, a slight detune and
  inharmonicity, under a noise floor; low pitches fall between mel bands, so a linear
  probe does well but not perfectly and a hidden layer helps.
* :func:`tagging_task`: an MTT-sized multi-label task (about 19k training clips, 1728-d,
  50 tags). Each clip mixes a few of 200 latent "sounds" (a sound is a direction in
  embedding space); a tag is present when a noisy, partly non-linear function of the
  sounds present exceeds a threshold set for its frequency (1-20 % of clips, long-tailed
  as MTT's tags are). A ridge probe reaches about 0.81 ROC-AUC and 0.38 AP on it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

SPLIT_NAMES = ("train", "valid", "test")


@dataclass
class SyntheticTask:
    """Arrays of one task: ``splits[name] = (embeddings (N, D) float32, labels)``."""

    task: str
    vocabulary: list[str]
    splits: dict[str, tuple[np.ndarray, np.ndarray]]


def _mel_edges(bands: int, low_hz: float, high_hz: float) -> np.ndarray:
    mel = np.linspace(
        2595 * np.log10(1 + low_hz / 700), 2595 * np.log10(1 + high_hz / 700), bands + 2
    )
    return 700 * (10 ** (mel / 2595) - 1)


def _note_logmel(
    rng: np.random.Generator, pitch: int, family: np.ndarray, edges: np.ndarray, frames: int
) -> np.ndarray:
    """``(frames, bands)`` log-mel of one note: harmonics through triangular mel filters."""
    f0 = 440.0 * 2 ** ((pitch - 69 + rng.normal(0, 0.2)) / 12)  # slight detune
    harmonics = np.arange(1, 41)
    freqs = f0 * harmonics * np.sqrt(1 + family[2] * harmonics**2)  # inharmonicity
    amps = harmonics ** -family[0] * (1 + family[1] * (harmonics % 2))  # tilt, odd/even
    keep = freqs < edges[-1]
    freqs, amps = freqs[keep], amps[keep] * rng.lognormal(0, 0.45, keep.sum())
    lower, centre, upper = edges[:-2, None], edges[1:-1, None], edges[2:, None]
    weights = np.clip(
        np.minimum((freqs - lower) / (centre - lower), (upper - freqs) / (upper - centre)), 0, None
    )
    spectrum = weights @ amps**2  # (bands,)
    decay = np.exp(-np.arange(frames) * family[3] * rng.uniform(0.5, 1.5))  # envelope
    loudness = rng.lognormal(0, 0.7)
    power = loudness * decay[:, None] * spectrum[None] + 1e-2 * rng.lognormal(0, 1.0)
    power *= rng.lognormal(0, 0.55, power.shape)  # frame-to-frame fluctuation
    return np.log(power + 1e-6)


def pitch_task(num_clips: int = 616, seed: int = 0, frames: int = 40) -> SyntheticTask:
    """The pitch task (see the module docstring): splits 60/20/20, every pitch in each."""
    rng = np.random.default_rng(seed)
    pitches = np.arange(48, 84)
    families = np.stack(
        [
            rng.uniform(0.5, 2.0, 8),  # spectral tilt
            rng.uniform(-0.8, 2.0, 8),  # odd-harmonic emphasis
            rng.uniform(0.0, 4e-4, 8),  # inharmonicity
            rng.uniform(0.01, 0.15, 8),  # decay per frame
        ],
        axis=1,
    )
    edges = _mel_edges(96, 0.0, 8000.0)
    cycle = ("train", "train", "train", "valid", "test")
    rows: dict[str, tuple[list, list]] = {name: ([], []) for name in SPLIT_NAMES}
    for i in range(num_clips):
        klass = i % len(pitches)
        split = cycle[(i // len(pitches) + klass) % len(cycle)]
        logmel = _note_logmel(rng, int(pitches[klass]), families[rng.integers(8)], edges, frames)
        rows[split][0].append(np.concatenate([logmel.mean(0), logmel.std(0)]))
        rows[split][1].append(klass)
    splits = {
        name: (np.asarray(emb, dtype=np.float32), np.asarray(labels, dtype=np.int64))
        for name, (emb, labels) in rows.items()
    }
    return SyntheticTask("multiclass", [str(p) for p in pitches], splits)


def tagging_task(
    sizes: tuple[int, int, int] = (19000, 1500, 4300),
    dim: int = 1728,
    num_tags: int = 50,
    seed: int = 0,
    sounds: int = 200,
) -> SyntheticTask:
    """The MTT-sized tagging task (see the module docstring)."""
    rng = np.random.default_rng(seed)
    directions = rng.standard_normal((sounds, dim)).astype(np.float32) / np.sqrt(dim)
    popularity = rng.dirichlet(np.full(sounds, 0.3))
    tag_weights = rng.standard_normal((sounds, num_tags)) * (rng.random((sounds, num_tags)) < 0.08)
    pair = rng.standard_normal((sounds, num_tags)) * (rng.random((sounds, num_tags)) < 0.02)
    rates = np.geomspace(0.2, 0.01, num_tags)  # long-tailed tag frequencies
    splits, threshold = {}, None
    for name, size in zip(SPLIT_NAMES, sizes, strict=True):
        # 2-6 sounds per clip, drawn without replacement by popularity (Gumbel top-k)
        keys = np.log(popularity) + rng.gumbel(size=(size, sounds))
        ranks = np.argsort(np.argsort(-keys, axis=1), axis=1)
        present = (ranks < rng.integers(2, 7, (size, 1))).astype(np.float32)
        gain = rng.lognormal(0, 0.3, present.shape).astype(np.float32) * present
        emb = gain @ directions * 4.0 + rng.standard_normal((size, dim), dtype=np.float32)
        # a tag: a linear vote of the sounds plus a pairwise (non-linear) term, with noise
        score = (
            present @ tag_weights
            + (present @ pair) ** 2
            + 0.2 * rng.standard_normal((size, num_tags))
        )
        if threshold is None:
            threshold = np.quantile(score, 1 - rates, axis=0).diagonal()
        labels = (score > threshold).astype(np.float32)
        splits[name] = (emb.astype(np.float32), labels)
    return SyntheticTask("multilabel", [f"tag{i:02d}" for i in range(num_tags)], splits)
