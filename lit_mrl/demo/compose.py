"""The demo corpus's composers: a labelled score for each task's clips.

A composer maps ``(rng, palette, target class or None, duration in seconds)`` to a
:class:`~lit_mrl.demo.music.Score` and its labels; everything follows from the RNG.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np

from lit_mrl.demo import music as dm
from lit_mrl.demo.synth import Palette

MELODIC = tuple(f for f in dm.FAMILIES if f != "bass")
TEMPO_BINS = ((60, 80), (80, 100), (100, 120), (120, 140), (140, 160), (160, 180))

# (rng, palette, target class or None, duration in seconds) -> (score, labels)
Composed = tuple[dm.Score, list[str]]
Composer = Callable[[np.random.Generator, Palette, str | None, float], Composed]


def _piece(
    rng: np.random.Generator,
    palette: Palette,
    duration: float,
    bpm: float,
    mode: str,
    families: Sequence[str],
    bass: bool,
    drums: bool,
    degrees: Sequence[int] | None = None,
    tonic: int | None = None,
) -> dm.Score:
    """A short piece: melody (first family), chords (each other family), optional bass and drums."""
    tonic = int(rng.integers(12)) if tonic is None else tonic
    beat = 60.0 / bpm
    bars = math.ceil(duration / (4 * beat))
    if degrees is None:
        progression = dm.pick(rng, dm.PROGRESSIONS[mode])
        degrees = [progression[b % len(progression)] for b in range(bars)]
    chords = [dm.chord_pitch_classes(tonic, mode, d) for d in degrees]
    score = dm.Score(duration=duration)
    for channel, family in enumerate(families):
        score.programs[channel] = int(dm.pick(rng, palette.families[family]))
        register = dm.REGISTERS[family]
        if channel == 0:
            dm.add_melody(score, rng, chords, tonic, mode, register, beat, channel)
        if channel > 0 or len(families) == 1:
            chord_channel = channel if channel > 0 else 4  # same instrument, own channel
            score.programs[chord_channel] = score.programs[channel]
            dm.add_chords(score, rng, chords, register, beat, chord_channel)
    if bass:
        score.programs[5] = int(dm.pick(rng, palette.families["bass"]))
        dm.add_bass(score, rng, chords, beat, 5)
    if drums:
        dm.add_drums(score, rng, bars, beat, int(dm.pick(rng, palette.kits)))
    score.notes = [n for n in score.notes if n.start < duration]
    return score


def _families(rng: np.random.Generator, most: int) -> list[str]:
    count = int(rng.integers(1, most + 1))
    return [str(f) for f in rng.choice(MELODIC, size=count, replace=False)]


def compose_pretrain(
    rng: np.random.Generator, palette: Palette, target: str | None, duration: float
) -> Composed:
    """One melodic family (melody and chords), often bass and drums; labels: those only.

    One melodic family, not up to three: with three, the labels were beyond what CPU
    minutes can learn (a linear probe on log-mel band statistics reached 0.72 macro
    ROC-AUC on the validation split, the tiny SF-NFNet-F0 0.62 after 60 epochs); with one,
    the same probe reaches 0.89 and the encoder can learn its tags within the demo.
    """
    families = _families(rng, 1)
    bass, drums = bool(rng.random() < 0.7), bool(rng.random() < 0.5)
    mode = str(dm.pick(rng, dm.MODES))
    bpm = float(rng.uniform(70, 160))
    score = _piece(rng, palette, duration, bpm, mode, families, bass, drums)
    return score, sorted(families + ["bass"] * bass + ["drums"] * drums)


def compose_tags(
    rng: np.random.Generator, palette: Palette, target: str | None, duration: float
) -> Composed:
    """Piece tagged with families plus tempo (slow/fast) and mode (major/minor)."""
    families = _families(rng, 3)
    bass, drums = bool(rng.random() < 0.7), bool(rng.random() < 0.5)
    mode = str(dm.pick(rng, dm.MODES))
    fast = bool(rng.random() < 0.5)
    bpm = float(rng.uniform(125, 160) if fast else rng.uniform(70, 95))
    score = _piece(rng, palette, duration, bpm, mode, families, bass, drums)
    tags = families + ["bass"] * bass + ["drums"] * drums + ["fast" if fast else "slow", mode]
    return score, sorted(tags)


def compose_pitch(
    rng: np.random.Generator, palette: Palette, target: str | None, duration: float
) -> Composed:
    """One note at MIDI pitch ``target`` on a random instrument, released 0.5-1 s before the end."""
    program = int(dm.pick(rng, palette.pitch_programs))
    hold = duration - float(rng.uniform(0.5, 1.0))
    note = dm.Note(0.0, hold, int(target), int(rng.integers(70, 121)), 0)
    return dm.Score(duration=duration, notes=[note], programs={0: program}), [target]


def compose_instrument(
    rng: np.random.Generator, palette: Palette, target: str | None, duration: float
) -> Composed:
    """Phrase played by one instrument of family ``target`` (sometimes with its own chords)."""
    mode = str(dm.pick(rng, dm.MODES))
    bpm = float(rng.uniform(90, 150))
    score = _piece(rng, palette, duration, bpm, mode, [target], False, False)
    if target == "bass" or rng.random() < 0.5:  # melody only
        score.notes = [n for n in score.notes if n.channel == 0]
    return score, [target]


def compose_key(
    rng: np.random.Generator, palette: Palette, target: str | None, duration: float
) -> Composed:
    """Progression ending in a IV/ii - V - I cadence in key ``target``, e.g. ``"F# minor"``.

    The tempo is set so a whole number of bars fills the clip, and the last bar is a held tonic
    chord (melody on the tonic, bass on the root), the clearest key cue.
    """
    name, mode = target.split()
    bars = max(3, round(duration * float(rng.uniform(100, 160)) / 240))
    bpm = bars * 240 / duration  # 4 beats per bar
    middle = [dm.pick(rng, (1, 2, 3, 5)) for _ in range(bars - 4)]
    cadence = [dm.pick(rng, (1, 3) if mode == "major" else (3,)), 4, 0]
    degrees = [0, *middle, *cadence] if bars >= 4 else [0, 4, 0]
    families = _families(rng, 2)
    bass = bool(rng.random() < 0.6)
    tonic = dm.NOTE_NAMES.index(name)
    score = _piece(rng, palette, duration, bpm, mode, families, bass, False, degrees, tonic)
    final = (bars - 1) * 240 / bpm
    score.notes = [n for n in score.notes if n.start < final - 1e-6]
    melody_center = sum(dm.REGISTERS[families[0]]) // 2
    chord_center = sum(dm.REGISTERS[families[-1]]) // 2 - 5  # as in add_chords
    chord_channel = 1 if len(families) > 1 else 4  # as in _piece
    held = [(0, dm.place(tonic, melody_center))]
    held += [
        (chord_channel, dm.place(pc, chord_center)) for pc in dm.chord_pitch_classes(tonic, mode, 0)
    ]
    held += [(5, dm.place(tonic, 41))] if bass else []
    for channel, pitch in held:
        score.notes.append(dm.Note(final, duration - 0.05, pitch, 90, channel))
    return score, [target]


def compose_tempo(
    rng: np.random.Generator, palette: Palette, target: str | None, duration: float
) -> Composed:
    """Drum + bass groove (+ maybe chords) at a tempo inside the bin ``target``."""
    low, high = (int(x) for x in target.split("-"))
    bpm = float(rng.uniform(low + 2, high - 2))  # margin keeps bins separable
    families = _families(rng, 1) if rng.random() < 0.6 else []
    mode = str(dm.pick(rng, dm.MODES))
    score = _piece(rng, palette, duration, bpm, mode, families, True, True)
    score.notes = [n for n in score.notes if n.channel != 0]  # keep the chords, drop the melody
    return score, [target]
