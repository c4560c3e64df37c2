"""Fixtures of the data_prep tests: short audio files written at test time."""

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf


def tone(seed: int, seconds: float, sample_rate: int) -> np.ndarray:
    """A noisy sine whose pitch follows ``seed``: float32 ``(T,)``, peak about 0.3."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * sample_rate)) / sample_rate
    audio = 0.3 * np.sin(2 * np.pi * (220 + 40 * seed) * t) + 0.01 * rng.standard_normal(len(t))
    return audio.astype(np.float32)


@pytest.fixture
def make_audio() -> Callable[..., Path]:
    """``make_audio(path, seed=0, seconds=0.5, sample_rate=16000)`` writes a tone; the format follows the extension."""

    def write(path: Path, seed: int = 0, seconds: float = 0.5, sample_rate: int = 16000) -> Path:
        path.parent.mkdir(parents=True, exist_ok=True)
        sf.write(path, tone(seed, seconds, sample_rate), sample_rate)
        return path

    return write
