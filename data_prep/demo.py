"""Synthetic, labelled music corpus for the demo, rendered with a real General MIDI soundfont.

Writes ``DIR/audio/<corpus>/<key>.flac`` (mono, 22.05 kHz, PCM_16) and, per corpus,
``DIR/manifests/<name>.jsonl`` + ``<name>.task.json`` + ``<name>.vocab.txt``::

    python -m data_prep.demo --out demo_data [--seed 0] [--scale 1.0] [--workers 2]

``pretrain`` is tagged with instrument families only, so a supervised encoder learns timbre
but never sees pitch, key or tempo; the downstream tasks (pitch, instrument, key, tempo, tags)
probe both what those labels cover and what they don't. Nothing is downloaded: the audio
comes from ``TimGM6mb.sf2`` (inside the ``pretty_midi`` wheel) rendered by ``tinysoundfont``.
"""

from __future__ import annotations

import argparse
import json
import math
import multiprocessing
import os
import time
import zlib
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf
from tqdm import tqdm

from data_prep import demo_music as dm

SPLIT_CYCLE = ("train", "train", "train", "valid", "test")  # 60 / 20 / 20
MELODIC = tuple(f for f in dm.FAMILIES if f != "bass")
INSTRUMENT_CLASSES = tuple(f for f in dm.FAMILIES if f != "synth_pad")
PITCHES = range(48, 84)  # C3..B5: 36 classes
TEMPO_BINS = ((60, 80), (80, 100), (100, 120), (120, 140), (140, 160), (160, 180))
FADE_SECONDS = 0.02  # fade-out so clips cut mid-note don't end in a click


# (rng, palette, target class or None, duration in seconds) -> (score, labels)
Composed = tuple[dm.Score, list[str]]
Composer = Callable[[np.random.Generator, dm.Palette, str | None, float], Composed]


def _piece(
    rng: np.random.Generator,
    palette: dm.Palette,
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
    rng: np.random.Generator, palette: dm.Palette, target: str | None, duration: float
) -> Composed:
    """Multi-instrument piece; labels are instrument families only (+ bass, drums)."""
    families = _families(rng, 3)
    bass, drums = bool(rng.random() < 0.7), bool(rng.random() < 0.5)
    mode = str(dm.pick(rng, dm.MODES))
    bpm = float(rng.uniform(70, 160))
    score = _piece(rng, palette, duration, bpm, mode, families, bass, drums)
    return score, sorted(families + ["bass"] * bass + ["drums"] * drums)


def compose_tags(
    rng: np.random.Generator, palette: dm.Palette, target: str | None, duration: float
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
    rng: np.random.Generator, palette: dm.Palette, target: str | None, duration: float
) -> Composed:
    """One note at MIDI pitch ``target`` on a random instrument, released 0.5-1 s before the end."""
    program = int(dm.pick(rng, palette.pitch_programs))
    hold = duration - float(rng.uniform(0.5, 1.0))
    note = dm.Note(0.0, hold, int(target), int(rng.integers(70, 121)), 0)
    return dm.Score(duration=duration, notes=[note], programs={0: program}), [target]


def compose_instrument(
    rng: np.random.Generator, palette: dm.Palette, target: str | None, duration: float
) -> Composed:
    """Phrase played by one instrument of family ``target`` (sometimes with its own chords)."""
    mode = str(dm.pick(rng, dm.MODES))
    bpm = float(rng.uniform(90, 150))
    score = _piece(rng, palette, duration, bpm, mode, [target], False, False)
    if target == "bass" or rng.random() < 0.5:  # melody only
        score.notes = [n for n in score.notes if n.channel == 0]
    return score, [target]


def compose_key(
    rng: np.random.Generator, palette: dm.Palette, target: str | None, duration: float
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
    rng: np.random.Generator, palette: dm.Palette, target: str | None, duration: float
) -> Composed:
    """Drum + bass groove (+ maybe chords) at a tempo inside the bin ``target``."""
    low, high = (int(x) for x in target.split("-"))
    bpm = float(rng.uniform(low + 2, high - 2))  # margin keeps bins separable
    families = _families(rng, 1) if rng.random() < 0.6 else []
    mode = str(dm.pick(rng, dm.MODES))
    score = _piece(rng, palette, duration, bpm, mode, families, True, True)
    score.notes = [n for n in score.notes if n.channel != 0]  # keep the chords, drop the melody
    return score, [target]


@dataclass(frozen=True)
class TaskSpec:
    """One corpus: its task type, label vocabulary and how to compose its clips.

    Args:
        task: ``"multilabel"`` or ``"multiclass"``.
        vocabulary: every label, sorted.
        balanced: if true, clip ``i`` has class ``vocabulary[i % len(vocabulary)]`` and
            ``count`` is per class; otherwise the composer picks the labels. Below one clip
            per class (tiny scales) only the first classes are present.
        count: clips (per class when balanced) at ``--scale 1``.
        seconds: (shortest, longest) clip duration.
        splits: split cycle; 3/5 train, 1/5 valid, 1/5 test unless overridden.
    """

    task: str
    vocabulary: tuple[str, ...]
    balanced: bool
    count: int
    seconds: tuple[float, float]
    compose: Composer
    description: str
    splits: tuple[str, ...] = SPLIT_CYCLE


_FAMILY_TAGS = (*MELODIC, "bass", "drums")
TASKS: dict[str, TaskSpec] = {
    "pretrain": TaskSpec(
        "multilabel", tuple(sorted(_FAMILY_TAGS)), False, 600, (8.0, 12.0), compose_pretrain,
        "Pre-training pieces (random key, tempo 70-160 BPM, progression, melody, bass, drums); "
        "labels: instrument families present only, never key, pitch or tempo.",
        splits=("train",) * 9 + ("valid",),
    ),
    "pitch": TaskSpec(
        "multiclass", tuple(str(p) for p in PITCHES), True, 12, (3.0, 3.0), compose_pitch,
        "Single notes on many instruments (nsynth-like); label: MIDI pitch 48-83.",
    ),
    "instrument": TaskSpec(
        "multiclass", tuple(sorted(INSTRUMENT_CLASSES)), True, 30, (3.0, 4.0), compose_instrument,
        "Single-instrument phrases in random keys; label: GM instrument family.",
    ),
    "key": TaskSpec(
        "multiclass", tuple(sorted(dm.key_name(t, m) for t in range(12) for m in dm.MODES)),
        True, 15, (6.0, 8.0), compose_key,
        "Progressions ending in a IV/ii-V-I cadence, random instruments and tempo; label: key.",
    ),
    "tempo": TaskSpec(
        "multiclass", tuple(f"{lo:03d}-{hi:03d}" for lo, hi in TEMPO_BINS), True, 50, (6.0, 8.0),
        compose_tempo, "Drum + bass grooves, sometimes with chords; label: tempo bin in BPM.",
    ),
    "tags": TaskSpec(
        "multilabel", tuple(sorted((*_FAMILY_TAGS, "fast", "slow", "major", "minor"))), False, 300,
        (6.0, 8.0), compose_tags,
        "Fresh pieces like pretrain; tags: families + fast/slow tempo + major/minor mode.",
    ),
}  # fmt: skip


@dataclass(frozen=True)
class Clip:
    """A composed clip waiting to be rendered; ``peak_db`` is its target peak in dBFS."""

    corpus: str
    key: str
    split: str
    labels: list[str]
    score: dm.Score
    peak_db: float


def plan_corpus(
    name: str, spec: TaskSpec, palette: dm.Palette, seed: int, scale: float
) -> list[Clip]:
    """Compose every clip of one corpus; clip ``i`` depends only on ``(seed, name, i)``."""
    num_classes = len(spec.vocabulary) if spec.balanced else 1
    total = max(len(spec.splits), round(spec.count * num_classes * scale))
    clips = []
    for index in range(total):
        rng = np.random.default_rng([seed, zlib.crc32(name.encode()), index])
        klass, rep = index % num_classes, index // num_classes
        target = spec.vocabulary[klass] if spec.balanced else None
        duration = round(float(rng.uniform(*spec.seconds)), 2)
        score, labels = spec.compose(rng, palette, target, duration)
        # Rotating the cycle by class spreads every class over every split.
        split = spec.splits[(rep + klass) % len(spec.splits)]
        peak_db = float(rng.uniform(-4.0, -2.0))
        clips.append(Clip(name, f"{name}_{index:05d}", split, labels, score, peak_db))
    return clips


_RENDERER: dm.Renderer | None = None  # one per worker process


def _init_renderer() -> None:
    global _RENDERER
    _RENDERER = dm.Renderer(dm.soundfont_path().read_bytes())


def render_clip(clip: Clip, out: Path) -> float:
    """Render, peak-normalise and write one clip as FLAC; returns its duration in seconds."""
    if _RENDERER is None:
        _init_renderer()
    audio = _RENDERER.render(clip.score)
    peak = float(np.abs(audio).max())
    if not np.isfinite(peak) or peak < 1e-4:
        raise RuntimeError(f"{clip.key}: rendered silence (peak {peak:.2e})")
    fade = min(len(audio), round(FADE_SECONDS * dm.SAMPLE_RATE))
    audio[len(audio) - fade :] *= np.linspace(1.0, 0.0, fade, dtype=np.float32)
    audio *= 10 ** (clip.peak_db / 20) / peak  # peak at -4..-2 dBFS: never clips in PCM_16
    path = out / "audio" / clip.corpus / f"{clip.key}.flac"
    sf.write(path, audio, dm.SAMPLE_RATE, format="FLAC", subtype="PCM_16")
    return len(audio) / dm.SAMPLE_RATE


def _render_job(job: tuple[Clip, Path]) -> tuple[str, float]:
    return job[0].corpus, render_clip(*job)


def _render_all(clips: list[Clip], out: Path, workers: int) -> Iterator[tuple[str, float]]:
    jobs = [(clip, out) for clip in clips]
    if workers <= 1:
        yield from map(_render_job, jobs)
        return
    ctx = multiprocessing.get_context("spawn")  # no fork of a possibly threaded parent
    with ctx.Pool(workers, initializer=_init_renderer) as pool:
        yield from pool.imap_unordered(_render_job, jobs, chunksize=4)


def write_manifests(out: Path, name: str, spec: TaskSpec, clips: list[Clip]) -> None:
    """Write ``<name>.jsonl`` (paths relative to the manifest folder), ``.task.json``, ``.vocab.txt``."""
    folder = out / "manifests"
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / f"{name}.jsonl", "w") as f:
        for clip in clips:
            line = {
                "path": f"../audio/{name}/{clip.key}.flac",
                "split": clip.split,
                "labels": clip.labels,
                "key": clip.key,
                "track_id": clip.key,
            }
            f.write(json.dumps(line) + "\n")
    task = {"task": spec.task, "vocabulary": list(spec.vocabulary), "description": spec.description}
    (folder / f"{name}.task.json").write_text(json.dumps(task, indent=2) + "\n")
    (folder / f"{name}.vocab.txt").write_text("".join(f"{label}\n" for label in spec.vocabulary))


def build_corpus(
    out: Path,
    seed: int = 0,
    scale: float = 1.0,
    workers: int = 1,
    tasks: Sequence[str] | None = None,
) -> dict[str, dict]:
    """Compose, render and write the demo corpora; returns per-corpus statistics.

    Args:
        out: output folder (``audio/`` and ``manifests/`` are created inside).
        seed: everything (labels, notes, instruments, gains) is a function of it.
        scale: multiplies the clip counts; ``0.1`` builds a tiny corpus in seconds.
        workers: rendering processes; 1 renders in this process.
        tasks: corpora to build (default: all of :data:`TASKS`).
    """
    names = list(TASKS) if tasks is None else list(tasks)
    started = time.perf_counter()
    palette = dm.check_soundfont(dm.soundfont_path().read_bytes(), (PITCHES[0], PITCHES[-1]))
    checked = time.perf_counter()
    plans = {name: plan_corpus(name, TASKS[name], palette, seed, scale) for name in names}
    composed = time.perf_counter()
    for name in names:
        (out / "audio" / name).mkdir(parents=True, exist_ok=True)
    clips = [clip for name in names for clip in plans[name]]
    seconds: Counter[str] = Counter()
    for corpus, duration in tqdm(_render_all(clips, out, workers), total=len(clips), desc="render"):
        seconds[corpus] += duration
    for name in names:
        write_manifests(out, name, TASKS[name], plans[name])
    finished = time.perf_counter()
    print(
        f"soundfont check {checked - started:.1f} s, compose {composed - checked:.1f} s, "
        f"render {finished - composed:.1f} s ({workers} workers), total {finished - started:.1f} s"
    )
    return {
        name: {
            "clips": len(plans[name]),
            "splits": dict(Counter(c.split for c in plans[name])),
            "seconds": round(seconds[name], 1),
            "classes": len(TASKS[name].vocabulary),
        }
        for name in names
    }


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True, help="output folder")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--scale", type=float, default=1.0, help="multiplies every clip count")
    parser.add_argument("--workers", type=int, default=min(2, os.cpu_count() or 1))
    parser.add_argument("--tasks", nargs="+", choices=list(TASKS), help="default: all")
    parser.add_argument(
        "--shard",
        action="store_true",
        help="also shard every corpus into OUT/shards/<name> (16 kHz) with data_prep.shard",
    )
    args = parser.parse_args(argv)
    stats = build_corpus(args.out, args.seed, args.scale, args.workers, args.tasks)
    print(f"{'corpus':<12}{'clips':>7}{'audio s':>10}{'classes':>9}  splits")
    for name, row in stats.items():
        splits = " ".join(f"{k}={v}" for k, v in sorted(row["splits"].items()))
        print(f"{name:<12}{row['clips']:>7}{row['seconds']:>10.0f}{row['classes']:>9}  {splits}")
    print(f"manifests in {args.out / 'manifests'}")
    if args.shard:
        for name in stats:
            shard_corpus(args.out, name, TASKS[name].task, args.workers)


def shard_corpus(out: Path, name: str, task: str, workers: int) -> None:
    """Shard one demo corpus into ``out/shards/<name>`` (resumes if already there).

    Raises:
        RuntimeError: the sharder could not use every clip.
    """
    from data_prep import shard

    manifests = out / "manifests"
    code = shard.main(
        [
            "--manifest", str(manifests / f"{name}.jsonl"),
            "--out", str(out / "shards" / name),
            "--dataset", name,
            "--task", task,
            "--vocabulary", str(manifests / f"{name}.vocab.txt"),
            "--workers", str(workers),
        ]
    )  # fmt: skip
    if code != 0:
        raise RuntimeError(f"sharding {name} failed (exit {code}); see {out / 'shards' / name}")


if __name__ == "__main__":
    main()
