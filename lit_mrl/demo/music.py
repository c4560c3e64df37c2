"""Music theory and composition for the synthetic demo corpus.

Everything here is deterministic given a ``numpy.random.Generator``: the ``add_*`` helpers
write parts (melody, chords, bass, drums) into a :class:`Score` (notes in seconds plus a
channel -> GM program map); :mod:`lit_mrl.demo.synth` turns scores into audio.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TypeVar

import numpy as np

from lit_mrl.formats.keys import KEY_NAMES, PITCH_CLASS_NAMES

T = TypeVar("T")

SAMPLE_RATE = 22050  # Hz; not the training rate, so the resampler is exercised
NOTE_NAMES = PITCH_CLASS_NAMES
MODES = ("major", "minor")
SCALES = {"major": (0, 2, 4, 5, 7, 9, 11), "minor": (0, 2, 3, 5, 7, 8, 10)}
DRUM_CHANNEL = 9  # GM channel 10
DRUM_KITS = (0, 8, 16, 24, 25, 32, 40)  # bank-128 kits of TimGM6mb: standard, room, power, ...

# 0-based GM programs per family. Left out after rendering every preset of TimGM6mb.sf2:
# 9, 14, 31 (bells / harmonics an octave or more off the played note), 47, 55 (timpani,
# orchestra hit), 43 (contrabass, octave-ambiguous), 52-54 and 85-86 (voices, parallel
# fifths), 78 (whistle, ~9 semitones flat) and the effects / ethnic / percussive families.
FAMILIES: dict[str, tuple[int, ...]] = {
    "piano": (0, 1, 2, 3, 4, 5, 6, 7),
    "chromatic_percussion": (8, 10, 11, 12, 13, 15),
    "organ": (16, 17, 18, 19, 20, 21, 22, 23),
    "guitar": (24, 25, 26, 27, 28, 29, 30),
    "bass": (32, 33, 34, 35, 36, 37, 38, 39),
    "strings": (40, 41, 42, 44, 45, 46, 48, 49, 50, 51),
    "brass": (56, 57, 58, 59, 60, 61, 62, 63),
    "reed": (64, 65, 66, 67, 68, 69, 70, 71),
    "pipe": (72, 73, 74, 75, 76, 77, 79),
    "synth_lead": (80, 81, 82, 83, 84, 87),
    "synth_pad": (88, 89, 90, 91, 92, 93, 94, 95),
}
# MIDI range each family plays melodies in (chords sit in the lower half).
REGISTERS: dict[str, tuple[int, int]] = {
    "piano": (48, 84),
    "chromatic_percussion": (60, 91),
    "organ": (48, 79),
    "guitar": (45, 79),
    "bass": (28, 55),
    "strings": (48, 84),
    "brass": (48, 77),
    "reed": (50, 79),
    "pipe": (60, 91),
    "synth_lead": (55, 84),
    "synth_pad": (48, 79),
}
# Presets whose pitch drifts from the played MIDI note inside 48-83 (measured with an FFT):
# organs 16-18 sound an octave low, 21/23 go ~60 cents flat up high, 76/77 drift at the ends.
OFF_PITCH_PROGRAMS = frozenset({16, 17, 18, 21, 23, 76, 77})
# GM drum keys and 16-step bar patterns (x = hit).
KICK, SNARE, CLOSED_HAT, OPEN_HAT, CRASH, RIDE = 36, 38, 42, 46, 49, 51
DRUM_PATTERNS: tuple[dict[int, str], ...] = (
    {KICK: "x.......x.......", SNARE: "....x.......x...", CLOSED_HAT: "x.x.x.x.x.x.x.x."},
    {KICK: "x...x...x...x...", SNARE: "....x.......x...", OPEN_HAT: "..x...x...x...x."},
    {KICK: "x.........x.....", SNARE: "........x.......", CLOSED_HAT: "x.x.x.x.x.x.x.x."},
    {KICK: "x..x..x...x..x..", SNARE: "....x..x.x..x...", CLOSED_HAT: "xxxxxxxxxxxxxxxx"},
    {KICK: "x.....x...x.....", SNARE: "....x.......x..x", RIDE: "x...x.x.x...x.x."},
)
# Chord progressions as 0-based scale degrees, one chord per bar.
PROGRESSIONS = {
    "major": ((0, 4, 5, 3), (0, 3, 4, 0), (0, 5, 3, 4), (1, 4, 0, 0), (0, 3, 0, 4), (0, 5, 1, 4)),
    "minor": ((0, 5, 2, 6), (0, 3, 4, 0), (0, 5, 3, 4), (0, 6, 5, 4), (0, 3, 6, 2)),
}


def key_name(tonic: int, mode: str) -> str:
    """Label of a key, e.g. ``key_name(1, "minor") == "C# minor"`` (:data:`KEY_NAMES`)."""
    return KEY_NAMES[tonic % 12 + 12 * MODES.index(mode)]


def key_pitch_classes(tonic: int, mode: str) -> set[int]:
    """Pitch classes a piece in this key may use (minor adds the raised 7th of harmonic minor)."""
    pcs = {(tonic + step) % 12 for step in SCALES[mode]}
    if mode == "minor":
        pcs.add((tonic + 11) % 12)
    return pcs


def chord_pitch_classes(tonic: int, mode: str, degree: int) -> list[int]:
    """Triad on a 0-based scale degree, root first; minor keys use a major V (leading tone)."""
    scale = SCALES[mode]
    steps = [scale[(degree + k) % 7] for k in (0, 2, 4)]
    if mode == "minor" and degree == 4:
        steps[1] = 11  # harmonic minor: V is major, which is what makes the cadence say "minor"
    return [(tonic + s) % 12 for s in steps]


@dataclass(frozen=True)
class Note:
    """One note event; ``start`` and ``end`` in seconds, ``pitch`` a MIDI key."""

    start: float
    end: float
    pitch: int
    velocity: int
    channel: int


@dataclass
class Score:
    """A clip to render: its length in seconds, its notes and the GM program of each channel.

    ``drum_kit`` selects a bank-128 kit on :data:`DRUM_CHANNEL` when not ``None``.
    """

    duration: float
    notes: list[Note] = field(default_factory=list)
    programs: dict[int, int] = field(default_factory=dict)
    drum_kit: int | None = None


def place(pitch_class: int, near: int) -> int:
    """The MIDI note with ``pitch_class`` closest to ``near``."""
    return near + (pitch_class - near + 6) % 12 - 6


def pick(rng: np.random.Generator, options: Sequence[T]) -> T:
    """One element of ``options`` (``rng.choice`` is slow on small lists and returns numpy types)."""
    return options[int(rng.integers(len(options)))]


def _velocity(rng: np.random.Generator, base: int) -> int:
    return min(127, max(20, base + int(rng.integers(-12, 13))))


def add_melody(
    score: Score,
    rng: np.random.Generator,
    chords: list[list[int]],
    tonic: int,
    mode: str,
    register: tuple[int, int],
    beat: float,
    channel: int,
) -> None:
    """A random-walk melody over one bar per chord: chord tones on strong beats, scale steps between."""
    scale = [p for p in range(register[0], register[1] + 1) if (p - tonic) % 12 in SCALES[mode]]
    index = len(scale) // 2 + int(rng.integers(-2, 3))
    t = 0.0
    while t < 4 * len(chords):
        length = pick(rng, (0.5, 1.0, 1.0, 1.5, 2.0))
        chord = chords[int(t // 4)]
        if t % 2 == 0:  # beats 1 and 3: jump to the nearest chord tone
            candidates = [i for i, p in enumerate(scale) if p % 12 in chord] or [index]
            sign = pick(rng, (-1, 1))  # random tie-break between chord tones above and below
            index = min(candidates, key=lambda i: (abs(i - index), sign * i))
        else:
            step = pick(rng, (-2, -1, -1, 1, 1, 2))
            index = min(len(scale) - 1, max(0, index + step))
        if rng.random() > 0.1:  # occasional rest
            pitch = scale[index]
            if mode == "minor" and (pitch - tonic) % 12 == 10 and (tonic + 11) % 12 in chord:
                pitch += 1  # raised 7th over V, as in harmonic minor
            end = min(t + length * 0.95, 4 * len(chords))
            score.notes.append(Note(t * beat, end * beat, pitch, _velocity(rng, 95), channel))
        t += length


def add_chords(
    score: Score,
    rng: np.random.Generator,
    chords: list[list[int]],
    register: tuple[int, int],
    beat: float,
    channel: int,
) -> None:
    """Accompaniment, one bar per chord: block chords, stabs or an eighth-note arpeggio."""
    center = (register[0] + register[1]) // 2 - 5
    style = pick(rng, ("whole", "half", "quarter", "offbeat", "arpeggio"))
    onsets = {
        "whole": [0],
        "half": [0, 2],
        "quarter": [0, 1, 2, 3],
        "offbeat": [0.5, 1.5, 2.5, 3.5],
    }
    for bar, chord in enumerate(chords):
        voicing = sorted(place(pc, center) for pc in chord)
        t0 = 4 * bar
        if style == "arpeggio":
            rising = [*voicing, voicing[0] + 12]
            for i, pitch in enumerate(rising + rising[::-1]):  # eight eighth notes
                start = (t0 + 0.5 * i) * beat
                score.notes.append(
                    Note(start, start + 0.45 * beat, pitch, _velocity(rng, 80), channel)
                )
            continue
        length = {"whole": 3.9, "half": 1.9, "quarter": 0.8, "offbeat": 0.35}[style]
        for onset in onsets[style]:
            velocity = _velocity(rng, 75)
            for pitch in voicing:
                start = (t0 + onset) * beat
                score.notes.append(Note(start, start + length * beat, pitch, velocity, channel))


def add_bass(
    score: Score,
    rng: np.random.Generator,
    chords: list[list[int]],
    beat: float,
    channel: int,
) -> None:
    """A bass line on the chord roots (whole notes, root-fifth, quarters or eighths)."""
    style = int(rng.integers(4))
    for bar, chord in enumerate(chords):
        root = place(chord[0], 41)  # around F2
        fifth = root + (chord[2] - chord[0]) % 12  # diminished on ii° / vii°: stays in the key
        if style == 0:
            steps = [(0.0, 3.8, root)]
        elif style == 1:
            steps = [(0.0, 1.8, root), (2.0, 1.8, fifth)]
        elif style == 2:
            steps = [(float(b), 0.9, p) for b, p in enumerate((root, root, fifth, root + 12))]
        else:
            steps = [(0.5 * i, 0.4, root + (12 if i % 4 == 3 else 0)) for i in range(8)]
        for onset, length, pitch in steps:
            start = (4 * bar + onset) * beat
            score.notes.append(
                Note(start, start + length * beat, pitch, _velocity(rng, 100), channel)
            )


def add_drums(score: Score, rng: np.random.Generator, bars: int, beat: float, kit: int) -> None:
    """A drum groove from :data:`DRUM_PATTERNS` on the GM drum channel, crash on the downbeat."""
    score.drum_kit = kit
    pattern = DRUM_PATTERNS[int(rng.integers(len(DRUM_PATTERNS)))]
    score.notes.append(Note(0.0, 0.2, CRASH, _velocity(rng, 90), DRUM_CHANNEL))
    for bar in range(bars):
        for key, hits in pattern.items():
            for step, hit in enumerate(hits):
                if hit == "x":
                    start = (4 * bar + step / 4) * beat
                    accent = 100 if step % 4 == 0 else 80
                    score.notes.append(
                        Note(start, start + 0.1, key, _velocity(rng, accent), DRUM_CHANNEL)
                    )
