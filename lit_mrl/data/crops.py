"""Cropping tracks into fixed-length clips: random, paired (contrastive) and centred.

All functions work on 1-D float32 numpy arrays of samples and never drop a track:
a track shorter than the crop is zero-padded (at a random position when cropping
randomly, so two views of a short track still differ).
"""

import numpy as np


def _place(audio: np.ndarray, num_samples: int, offset: int) -> np.ndarray:
    """Put a short ``audio`` into a zero buffer of ``num_samples`` at ``offset``."""
    out = np.zeros(num_samples, dtype=np.float32)
    out[offset : offset + len(audio)] = audio
    return out


def random_crop(audio: np.ndarray, num_samples: int, rng: np.random.Generator) -> np.ndarray:
    """A uniformly placed crop of ``num_samples`` samples.

    Args:
        audio: ``(T,)`` track.
        num_samples: crop length in samples.
        rng: random source.

    Returns:
        ``(num_samples,)`` crop; short tracks are padded at a random offset.
    """
    if len(audio) < num_samples:
        return _place(audio, num_samples, int(rng.integers(0, num_samples - len(audio) + 1)))
    start = int(rng.integers(0, len(audio) - num_samples + 1))
    return audio[start : start + num_samples]


def center_crop(audio: np.ndarray, num_samples: int) -> np.ndarray:
    """The deterministic crop in the middle of the track (evaluation).

    Args:
        audio: ``(T,)`` track.
        num_samples: crop length in samples.

    Returns:
        ``(num_samples,)`` crop; short tracks are padded equally on both sides.
    """
    if len(audio) < num_samples:
        return _place(audio, num_samples, (num_samples - len(audio)) // 2)
    start = (len(audio) - num_samples) // 2
    return audio[start : start + num_samples]


def paired_crops(
    audio: np.ndarray, num_samples: int, max_offset: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Two crops of one track whose centres are at most ``max_offset`` samples apart.

    The first centre is uniform over all valid centres; the second is uniform over
    the valid centres within ``max_offset`` of the first, so positives are
    temporally close (MULE's follow-up papers: within about 5 s).

    Args:
        audio: ``(T,)`` track.
        num_samples: crop length in samples.
        max_offset: largest distance between the two crop centres, in samples.
        rng: random source.

    Returns:
        Two ``(num_samples,)`` crops.
    """
    if len(audio) < num_samples:
        return random_crop(audio, num_samples, rng), random_crop(audio, num_samples, rng)
    last_start = len(audio) - num_samples
    start_a = int(rng.integers(0, last_start + 1))
    low, high = max(0, start_a - max_offset), min(last_start, start_a + max_offset)
    start_b = int(rng.integers(low, high + 1))
    return audio[start_a : start_a + num_samples], audio[start_b : start_b + num_samples]
