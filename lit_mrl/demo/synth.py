"""SoundFont rendering of demo scores, offline and without an audio device.

:class:`Renderer` turns a :class:`~lit_mrl.demo.music.Score` into audio with
``tinysoundfont`` and the ``TimGM6mb.sf2`` General MIDI soundfont that ships inside the
``pretty_midi`` wheel; :func:`check_soundfont` keeps only presets that sound.
"""

from __future__ import annotations

import importlib.resources
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import tinysoundfont

from lit_mrl.demo.music import (
    CLOSED_HAT,
    DRUM_CHANNEL,
    DRUM_KITS,
    FAMILIES,
    KICK,
    OFF_PITCH_PROGRAMS,
    REGISTERS,
    SAMPLE_RATE,
    SNARE,
    Score,
)


def soundfont_path() -> Path:
    """Path of the General MIDI soundfont bundled with ``pretty_midi``."""
    return Path(str(importlib.resources.files("pretty_midi") / "TimGM6mb.sf2"))


class Renderer:
    """Renders scores with one loaded soundfont, silenced and checked between clips.

    Parsing the soundfont costs about as much as rendering a few seconds of music, so a worker
    keeps one synthesiser. After a clip every voice is cut and flushed; if anything is still
    sounding the synthesiser is rebuilt, so a clip never depends on what was rendered before.

    Args:
        soundfont: bytes of an sf2 file.
        sample_rate: output rate in Hz.
    """

    def __init__(self, soundfont: bytes, sample_rate: int = SAMPLE_RATE) -> None:
        self.soundfont = soundfont
        self.sample_rate = sample_rate
        self._reload()

    def _reload(self) -> None:
        self.synth = tinysoundfont.Synth(samplerate=self.sample_rate)
        self.sfid = self.synth.sfload(self.soundfont)

    def _generate(self, num_samples: int) -> np.ndarray:
        return np.frombuffer(self.synth.generate_simple(num_samples), np.float32)

    def render(self, score: Score) -> np.ndarray:
        """Mono float32 audio of ``round(score.duration * sample_rate)`` samples."""
        for channel, program in score.programs.items():
            self.synth.program_select(channel, self.sfid, 0, program)
        if score.drum_kit is not None:
            self.synth.program_select(DRUM_CHANNEL, self.sfid, 128, score.drum_kit, is_drums=True)
        num_samples = round(score.duration * self.sample_rate)
        # (sample, 0 = off before 1 = on at the same instant, channel, pitch, velocity)
        events = []
        for n in score.notes:
            events.append((round(n.start * self.sample_rate), 1, n.channel, n.pitch, n.velocity))
            events.append((round(n.end * self.sample_rate), 0, n.channel, n.pitch, 0))
        events.sort()
        chunks, position = [], 0
        for sample, is_on, channel, pitch, velocity in events:
            sample = min(sample, num_samples)
            if sample > position:
                chunks.append(self._generate(sample - position))
                position = sample
            if is_on:
                self.synth.noteon(channel, pitch, velocity)
            else:
                self.synth.noteoff(channel, pitch)
        chunks.append(self._generate(num_samples - position))
        self._silence()
        stereo = np.concatenate(chunks).reshape(-1, 2)  # interleaved L/R
        return stereo.mean(axis=1, dtype=np.float32)

    def _silence(self) -> None:
        self.synth.sounds_off()  # quick release of every voice
        self._generate(round(0.1 * self.sample_rate))
        if np.any(self._generate(256)):
            self._reload()


def render_score(score: Score, soundfont: bytes, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """Render one score with a fresh synthesiser (see :class:`Renderer` for many scores)."""
    return Renderer(soundfont, sample_rate).render(score)


def _test_note_peak(synth: tinysoundfont.Synth, channel: int, pitch: int) -> float:
    """Peak of the first 0.15 s of one note; the note is cut before the next test."""
    synth.noteon(channel, pitch, 100)
    audio = np.frombuffer(synth.generate_simple(round(0.15 * SAMPLE_RATE)), np.float32)
    synth.noteoff(channel, pitch)
    synth.sounds_off(channel)  # quick release, flushed below, so tails never mask a silent note
    synth.generate_simple(round(0.1 * SAMPLE_RATE))
    return float(np.abs(audio).max())


def find_audible_programs(
    soundfont: bytes, pitches: dict[int, tuple[int, ...]], min_peak: float = 1e-3
) -> set[int]:
    """Programs whose test notes all make sound; ``pitches`` maps a program to notes to try."""
    synth = tinysoundfont.Synth(samplerate=SAMPLE_RATE)
    sfid = synth.sfload(soundfont)
    audible = set()
    for program, notes in pitches.items():
        synth.program_select(0, sfid, 0, program)
        if all(_test_note_peak(synth, 0, pitch) > min_peak for pitch in notes):
            audible.add(program)
    return audible


def find_audible_kits(soundfont: bytes, min_peak: float = 1e-3) -> list[int]:
    """Drum kits of :data:`DRUM_KITS` whose kick, snare and hi-hat all make sound."""
    synth = tinysoundfont.Synth(samplerate=SAMPLE_RATE)
    sfid = synth.sfload(soundfont)
    kits = []
    for kit in DRUM_KITS:
        synth.program_select(DRUM_CHANNEL, sfid, 128, kit, is_drums=True)
        if all(
            _test_note_peak(synth, DRUM_CHANNEL, p) > min_peak for p in (KICK, SNARE, CLOSED_HAT)
        ):
            kits.append(kit)
    return kits


@dataclass(frozen=True)
class Palette:
    """Instruments the soundfont actually sounds: programs per family, pitch-task programs, kits."""

    families: dict[str, tuple[int, ...]]
    pitch_programs: tuple[int, ...]
    kits: tuple[int, ...]


def check_soundfont(soundfont: bytes, pitch_task_notes: tuple[int, ...]) -> Palette:
    """Render test notes for every candidate program and kit and keep only the audible ones.

    Programs for the pitch task must also sound at ``pitch_task_notes`` and be in tune there.
    """
    tests: dict[int, tuple[int, ...]] = {}
    for family, programs in FAMILIES.items():
        low, high = REGISTERS[family]
        for program in programs:
            tests[program] = (low, (low + high) // 2, high)
    audible = find_audible_programs(soundfont, tests)
    in_pitch_range = find_audible_programs(soundfont, dict.fromkeys(tests, pitch_task_notes))
    families = {f: tuple(p for p in ps if p in audible) for f, ps in FAMILIES.items()}
    if not all(families.values()):
        raise RuntimeError(f"soundfont has a silent instrument family: {families}")
    pitch_programs = tuple(
        p
        for f, ps in families.items()
        if f != "bass"
        for p in ps
        if p in in_pitch_range and p not in OFF_PITCH_PROGRAMS
    )
    return Palette(families, pitch_programs, tuple(find_audible_kits(soundfont)))
