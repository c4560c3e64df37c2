"""Synthetic, labelled music corpus for the demo, rendered with a real General MIDI soundfont.

Writes ``DIR/audio/<corpus>/<key>.flac`` (mono, 22.05 kHz, PCM_16), per corpus
``DIR/manifests/<name>.jsonl`` + ``<name>.task.json`` + ``<name>.vocab.txt`` (manifests
``python -m data_prep.shard`` reads), and its shards in ``DIR/shards/<name>`` (16 kHz,
through :func:`lit_mrl.formats.audio.load_audio`, the loader the sharder uses).

``pretrain`` is tagged with instrument families only, so a supervised encoder learns timbre
but never sees pitch, key or tempo; the downstream tasks (pitch, instrument, key, tempo, tags)
probe both what those labels cover and what they don't. Nothing is downloaded: the audio
comes from ``TimGM6mb.sf2`` (inside the ``pretty_midi`` wheel) rendered by ``tinysoundfont``.
"""

from __future__ import annotations

import json
import multiprocessing
import time
import zlib
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf
from tqdm import tqdm

from lit_mrl.demo import music as dm
from lit_mrl.demo.compose import (
    MELODIC,
    TEMPO_BINS,
    Composer,
    compose_instrument,
    compose_key,
    compose_pitch,
    compose_pretrain,
    compose_tags,
    compose_tempo,
)
from lit_mrl.demo.recording import Recording, draw_recording, record
from lit_mrl.demo.synth import Palette, Renderer, check_soundfont, soundfont_path

SPLIT_CYCLE = ("train", "train", "train", "valid", "test")  # 60 / 20 / 20
INSTRUMENT_CLASSES = tuple(f for f in dm.FAMILIES if f != "synth_pad")
PITCHES = range(48, 84)  # C3..B5: 36 classes
FADE_SECONDS = 0.02  # fade-out so clips cut mid-note don't end in a click


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
# Downstream sets are twice the first round's size: 120-170 test clips per task, so the
# 95 % intervals of the report are about +-7 points instead of +-11.
TASKS: dict[str, TaskSpec] = {
    "pretrain": TaskSpec(
        "multilabel", tuple(sorted(_FAMILY_TAGS)), False, 600, (8.0, 12.0), compose_pretrain,
        "Pre-training pieces (random key, tempo 70-160 BPM, progression; one melodic family, "
        "often bass and drums); labels: instrument families present only, never key, pitch "
        "or tempo.",
        splits=("train",) * 9 + ("valid",),
    ),
    "pitch": TaskSpec(
        "multiclass", tuple(str(p) for p in PITCHES), True, 24, (3.0, 3.0), compose_pitch,
        "Single notes on many instruments (nsynth-like); label: MIDI pitch 48-83.",
    ),
    "instrument": TaskSpec(
        "multiclass", tuple(sorted(INSTRUMENT_CLASSES)), True, 60, (3.0, 4.0), compose_instrument,
        "Single-instrument phrases in random keys; label: GM instrument family.",
    ),
    "key": TaskSpec(
        "multiclass", tuple(sorted(dm.key_name(t, m) for t in range(12) for m in dm.MODES)),
        True, 30, (6.0, 8.0), compose_key,
        "Progressions ending in a IV/ii-V-I cadence, random instruments and tempo; label: key.",
    ),
    "tempo": TaskSpec(
        "multiclass", tuple(f"{lo:03d}-{hi:03d}" for lo, hi in TEMPO_BINS), True, 100, (6.0, 8.0),
        compose_tempo, "Drum + bass grooves, sometimes with chords; label: tempo bin in BPM.",
    ),
    "tags": TaskSpec(
        "multilabel", tuple(sorted((*_FAMILY_TAGS, "fast", "slow", "major", "minor"))), False, 600,
        (6.0, 8.0), compose_tags,
        "Fresh pieces like pretrain; tags: families + fast/slow tempo + major/minor mode.",
    ),
}  # fmt: skip


@dataclass(frozen=True)
class Clip:
    """A composed clip waiting to be rendered; ``peak_db`` is its target peak in dBFS.

    ``recording`` (``--realism recorded``) is the EQ, room and noise it is rendered
    through, and ``seed`` seeds the room's and the noise's random parts.
    """

    corpus: str
    key: str
    split: str
    labels: list[str]
    score: dm.Score
    peak_db: float
    recording: Recording | None = None
    seed: tuple[int, ...] = ()


REALISM = ("clean", "recorded")


def plan_corpus(
    name: str, spec: TaskSpec, palette: Palette, seed: int, scale: float, realism: str = "clean"
) -> list[Clip]:
    """Compose every clip of one corpus; clip ``i`` depends only on ``(seed, name, i)``.

    ``realism="recorded"`` also draws each clip's recording chain
    (:mod:`lit_mrl.demo.recording`) from a stream of its own, so the music of a clip is
    the same in both corpora.
    """
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
        recording, clip_seed = None, (seed, zlib.crc32(name.encode()), index, 1)
        if realism == "recorded":
            recording = draw_recording(np.random.default_rng(clip_seed))
        clips.append(Clip(name, f"{name}_{index:05d}", split, labels, score, peak_db,
                          recording, clip_seed))  # fmt: skip
    return clips


_RENDERER: Renderer | None = None  # one per worker process


def _init_renderer() -> None:
    global _RENDERER
    _RENDERER = Renderer(soundfont_path().read_bytes())


def render_clip(clip: Clip, out: Path) -> float:
    """Render, peak-normalise and write one clip as FLAC; returns its duration in seconds."""
    if _RENDERER is None:
        _init_renderer()
    audio = _RENDERER.render(clip.score)
    if clip.recording is not None:
        rng = np.random.default_rng([*clip.seed, 2])  # the room's and the noise's draws
        audio = record(audio, clip.recording, dm.SAMPLE_RATE, rng)
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
    realism: str = "clean",
) -> dict[str, dict]:
    """Compose, render and write the demo corpora; returns per-corpus statistics.

    Args:
        out: output folder (``audio/`` and ``manifests/`` are created inside).
        seed: everything (labels, notes, instruments, gains) is a function of it.
        scale: multiplies the clip counts; ``0.1`` builds a tiny corpus in seconds.
        workers: rendering processes; 1 renders in this process.
        tasks: corpora to build (default: all of :data:`TASKS`).
        realism: ``"clean"`` renders, or ``"recorded"``: each clip through a random EQ,
            room and background noise (:mod:`lit_mrl.demo.recording`), the same
            distributions for every corpus.
    """
    if realism not in REALISM:
        raise ValueError(f"realism must be one of {REALISM}, got {realism!r}")
    names = list(TASKS) if tasks is None else list(tasks)
    started = time.perf_counter()
    palette = check_soundfont(soundfont_path().read_bytes(), (PITCHES[0], PITCHES[-1]))
    checked = time.perf_counter()
    plans = {name: plan_corpus(name, TASKS[name], palette, seed, scale, realism) for name in names}
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


def shard_corpus(out: Path, name: str, sample_rate: int = 16000) -> None:
    """Shard one rendered corpus into ``out/shards/<name>`` from its manifest.

    Audio is read by :func:`lit_mrl.formats.audio.load_audio` (decode, resample with soxr,
    quantise), exactly what ``python -m data_prep.shard`` stores for the same manifest.
    Shards of an interrupted earlier attempt are replaced (the corpus is deterministic).
    """
    from lit_mrl.formats.audio import load_audio
    from lit_mrl.formats.shard_writer import write_dataset

    manifest = out / "manifests" / f"{name}.jsonl"
    rows = [json.loads(line) for line in manifest.read_text().splitlines() if line.strip()]
    folder = out / "shards" / name
    folder.mkdir(parents=True, exist_ok=True)
    for stale in [*folder.glob("*.tar"), *folder.glob("*.tmp")]:
        stale.unlink()
    splits: dict[str, list] = {}
    for row in rows:
        splits.setdefault(row["split"], [])
    spec = TASKS[name]

    def samples(split: str) -> Iterator[tuple]:
        for row in rows:
            if row["split"] == split:
                audio = load_audio(manifest.parent / row["path"], sample_rate)
                yield row["key"], audio, {"labels": row["labels"], "track_id": row["track_id"]}

    write_dataset(
        folder,
        name,
        {split: samples(split) for split in splits},
        sample_rate,
        task=spec.task,
        vocabulary=list(spec.vocabulary),
    )
