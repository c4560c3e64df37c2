"""What a recording does to clean music: equalisation, a room, background noise.

Real catalogs are not clean soundfont renders: tracks differ in mastering EQ, in the
room (or reverb) they were recorded in, and in the noise under them. A representation
is supposed to be invariant to these; per-band log-mel statistics are not (an EQ moves
every band mean). The demo's ``--realism recorded`` corpus applies one random
:class:`Recording` per clip, drawn from the same distributions for the pre-training
corpus and every downstream task (so no model sees anything the others do not).

Every effect is deterministic given its parameters, so a clip is a function of the
corpus seed and its index.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

EQ_BANDS = 3  # random bell-shaped boosts/cuts on a log-frequency axis


@dataclass(frozen=True)
class Recording:
    """One clip's recording chain.

    Args:
        tilt_db: spectral tilt, dB per decade around 1 kHz (mastering / microphone).
        bands: ``(centre Hz, gain dB, width in octaves)`` of each EQ bump.
        rt60: reverberation time of the room, in seconds.
        wet_db: level of the reverberant part relative to the direct sound, in dB.
        snr_db: signal-to-noise ratio of the background, in dB.
        noise_slope: spectral slope of the background noise: 0 white, 1 pink, 2 brown.
    """

    tilt_db: float
    bands: tuple[tuple[float, float, float], ...]
    rt60: float
    wet_db: float
    snr_db: float
    noise_slope: float


def draw_recording(rng: np.random.Generator) -> Recording:
    """A random recording chain (the distributions of every ``recorded`` corpus)."""
    bands = tuple(
        (float(np.exp(rng.uniform(np.log(80.0), np.log(7000.0)))), float(rng.uniform(-9, 9)),
         float(rng.uniform(0.5, 2.0)))
        for _ in range(EQ_BANDS)
    )  # fmt: skip
    return Recording(
        tilt_db=float(rng.uniform(-4.0, 4.0)),
        bands=bands,
        rt60=float(rng.uniform(0.2, 1.2)),
        wet_db=float(rng.uniform(-18.0, -3.0)),
        snr_db=float(rng.uniform(12.0, 35.0)),
        noise_slope=float(rng.uniform(0.0, 2.0)),
    )


def eq_gain_db(recording: Recording, freqs: np.ndarray) -> np.ndarray:
    """The EQ's gain in dB at ``freqs`` (Hz): the tilt plus the bumps."""
    octaves_from_1k = np.log2(np.maximum(freqs, 20.0) / 1000.0)
    gain = recording.tilt_db * octaves_from_1k * np.log10(2.0)  # dB per decade -> per octave
    for centre, gain_db, width in recording.bands:
        distance = np.log2(np.maximum(freqs, 20.0) / centre) / width
        gain = gain + gain_db * np.exp(-0.5 * distance**2)
    return gain


def room_response(recording: Recording, sample_rate: int, rng: np.random.Generator) -> np.ndarray:
    """An impulse response: the direct sound then exponentially decaying noise (the room)."""
    length = int(recording.rt60 * sample_rate)
    t = np.arange(length) / sample_rate
    tail = rng.standard_normal(length) * 10 ** (-3.0 * t / recording.rt60)  # -60 dB at rt60
    tail *= 10 ** (recording.wet_db / 20) / np.sqrt(np.sum(tail**2))
    response = tail
    response[0] += 1.0  # the direct path
    return response.astype(np.float32)


def coloured_noise(num: int, slope: float, rng: np.random.Generator) -> np.ndarray:
    """Noise whose power falls as ``1 / f**slope``, unit RMS."""
    spectrum = np.fft.rfft(rng.standard_normal(num))
    freqs = np.maximum(np.fft.rfftfreq(num), 1.0 / num)
    noise = np.fft.irfft(spectrum / freqs ** (slope / 2), n=num)
    return noise / max(float(np.sqrt(np.mean(noise**2))), 1e-12)


def record(
    audio: np.ndarray, recording: Recording, sample_rate: int, rng: np.random.Generator
) -> np.ndarray:
    """``audio`` (mono ``(T,)``) through the EQ, the room and the background noise.

    The output has the input's length; its level is set by the caller (the corpus
    peak-normalises every clip).
    """
    num = len(audio)
    response = room_response(recording, sample_rate, rng)
    size = 1 << int(np.ceil(np.log2(num + len(response))))
    freqs = np.fft.rfftfreq(size, 1.0 / sample_rate)
    gain = 10 ** (eq_gain_db(recording, freqs) / 20)
    wet = np.fft.irfft(np.fft.rfft(audio, size) * np.fft.rfft(response, size) * gain, size)[:num]
    signal_rms = float(np.sqrt(np.mean(wet**2)))
    noise = coloured_noise(num, recording.noise_slope, rng)
    wet = wet + noise * signal_rms * 10 ** (-recording.snr_db / 20)
    return wet.astype(np.float32)
