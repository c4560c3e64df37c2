import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from lit_mrl.demo import corpus as demo
from lit_mrl.demo import music as dm
from lit_mrl.demo import synth

SCALE = 0.02  # 6-12 clips per corpus, about 300 s of audio


@pytest.fixture(scope="module")
def palette() -> synth.Palette:
    return synth.check_soundfont(
        synth.soundfont_path().read_bytes(), (demo.PITCHES[0], demo.PITCHES[-1])
    )


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("demo")
    demo.build_corpus(out, seed=0, scale=SCALE, workers=1)
    return out


def read_manifest(out: Path, name: str) -> list[dict]:
    with open(out / "manifests" / f"{name}.jsonl") as f:
        return [json.loads(line) for line in f]


def harmonic_product_f0(audio: np.ndarray, sample_rate: int) -> float:
    """Crude f0: peak of the spectrum times its 2x and 3x decimations (robust to strong harmonics)."""
    spectrum = np.abs(np.fft.rfft(audio * np.hanning(len(audio)), 1 << 16))
    product = spectrum.copy()
    for factor in (2, 3):
        decimated = spectrum[::factor]
        product[: len(decimated)] *= decimated
        product[len(decimated) :] = 0
    freqs = np.fft.rfftfreq(1 << 16, 1 / sample_rate)
    product[(freqs < 50) | (freqs > 2000)] = 0
    return float(freqs[np.argmax(product)])


def test_palette_keeps_audible_in_tune_instruments(palette: synth.Palette) -> None:
    assert set(palette.families) == set(dm.FAMILIES)
    assert all(palette.families.values())
    assert palette.kits
    assert len(palette.pitch_programs) >= 30
    assert not set(palette.pitch_programs) & dm.OFF_PITCH_PROGRAMS
    assert not set(palette.pitch_programs) & set(dm.FAMILIES["bass"])


@pytest.mark.parametrize("name", list(demo.TASKS))
def test_manifest_matches_task_and_vocabulary(corpus: Path, name: str) -> None:
    spec = demo.TASKS[name]
    task = json.loads((corpus / "manifests" / f"{name}.task.json").read_text())
    vocab = (corpus / "manifests" / f"{name}.vocab.txt").read_text().splitlines()
    assert task["task"] == spec.task
    assert task["vocabulary"] == vocab == sorted(vocab)
    assert len(set(vocab)) == len(vocab)
    lines = read_manifest(corpus, name)
    assert lines
    for line in lines:
        assert set(line) == {"path", "split", "labels", "key", "track_id"}
        assert line["path"] == f"../audio/{name}/{line['key']}.flac"
        assert line["labels"]
        assert set(line["labels"]) <= set(vocab)
        if spec.task == "multiclass":
            assert len(line["labels"]) == 1
    assert len({line["key"] for line in lines}) == len(lines)
    assert {line["split"] for line in lines} == set(spec.splits)


@pytest.mark.parametrize("name", list(demo.TASKS))
def test_audio_decodes_with_declared_duration_and_level(corpus: Path, name: str) -> None:
    low, high = demo.TASKS[name].seconds
    for line in read_manifest(corpus, name):
        path = corpus / "manifests" / line["path"]
        info = sf.info(path)
        assert (info.format, info.subtype, info.samplerate) == ("FLAC", "PCM_16", dm.SAMPLE_RATE)
        assert low - 1e-3 <= info.duration <= high + 1e-3
        audio, _ = sf.read(path, dtype="float32")
        peak_db = 20 * np.log10(np.abs(audio).max())
        assert -4.1 <= peak_db <= -1.9  # normalised: neither silent nor clipped


def test_pretrain_labels_are_instruments_only() -> None:
    vocab = set(demo.TASKS["pretrain"].vocabulary)
    assert vocab <= set(dm.FAMILIES) | {"drums"}
    assert not vocab & {"major", "minor", "fast", "slow"}


def test_same_seed_gives_identical_corpus_with_any_worker_count(
    corpus: Path, tmp_path: Path
) -> None:
    demo.build_corpus(tmp_path, seed=0, scale=SCALE, workers=2, tasks=["instrument"])
    manifest = Path("manifests") / "instrument.jsonl"
    assert (tmp_path / manifest).read_bytes() == (corpus / manifest).read_bytes()
    for line in read_manifest(corpus, "instrument"):
        audio = Path("manifests") / line["path"]
        assert (tmp_path / audio).read_bytes() == (corpus / audio).read_bytes()


def test_other_seed_gives_other_music(palette: synth.Palette) -> None:
    spec = demo.TASKS["pretrain"]
    first = demo.plan_corpus("pretrain", spec, palette, seed=0, scale=SCALE)
    again = demo.plan_corpus("pretrain", spec, palette, seed=0, scale=SCALE)
    other = demo.plan_corpus("pretrain", spec, palette, seed=1, scale=SCALE)
    assert [c.score.notes for c in first] == [c.score.notes for c in again]
    assert [c.labels for c in first] == [c.labels for c in again]
    assert [c.score.notes for c in first] != [c.score.notes for c in other]


@pytest.mark.parametrize("pitch", [48, 57, 64, 71, 83])
def test_pitch_clip_sounds_at_labelled_pitch(palette: synth.Palette, pitch: int) -> None:
    piano = synth.Palette(palette.families, pitch_programs=(0,), kits=palette.kits)
    score, labels = demo.compose_pitch(np.random.default_rng(pitch), piano, str(pitch), 3.0)
    assert labels == [str(pitch)]
    audio = synth.render_score(score, synth.soundfont_path().read_bytes())
    f0 = harmonic_product_f0(audio[: dm.SAMPLE_RATE], dm.SAMPLE_RATE)
    semitones = 12 * np.log2(f0 / (440 * 2 ** ((pitch - 69) / 12)))
    octaves = round(semitones / 12)
    assert abs(octaves) <= 1
    assert abs(semitones - 12 * octaves) < 0.5


def test_key_clips_use_the_key_and_end_on_the_tonic(palette: synth.Palette) -> None:
    clips = demo.plan_corpus("key", demo.TASKS["key"], palette, seed=0, scale=0.1)
    assert {c.labels[0] for c in clips} == set(demo.TASKS["key"].vocabulary)
    for clip in clips:
        name, mode = clip.labels[0].split()
        tonic = dm.NOTE_NAMES.index(name)
        assert {n.pitch % 12 for n in clip.score.notes} <= dm.key_pitch_classes(tonic, mode)
        accompaniment = [n for n in clip.score.notes if n.channel != 0]
        last = max(n.start for n in accompaniment)
        final_chord = {n.pitch % 12 for n in accompaniment if n.start == last}
        assert final_chord <= set(dm.chord_pitch_classes(tonic, mode, 0))


def test_rendered_key_clips_are_mostly_in_key(corpus: Path) -> None:
    for line in read_manifest(corpus, "key"):
        audio, sample_rate = sf.read(corpus / "manifests" / line["path"], dtype="float32")
        frames = np.lib.stride_tricks.sliding_window_view(audio, 4096)[::2048] * np.hanning(4096)
        power = (np.abs(np.fft.rfft(frames, axis=1)) ** 2).sum(axis=0)
        freqs = np.fft.rfftfreq(4096, 1 / sample_rate)
        band = (freqs > 60) & (freqs < 2000)
        pitch_class = np.round(12 * np.log2(freqs[band] / 440) + 69).astype(int) % 12
        chroma = np.bincount(pitch_class, weights=power[band], minlength=12)
        name, mode = line["labels"][0].split()
        in_key = list(dm.key_pitch_classes(dm.NOTE_NAMES.index(name), mode))
        assert chroma[in_key].sum() / chroma.sum() > 0.6


def test_corpus_shards_equal_what_the_sharder_stores(corpus: Path, tmp_path: Path) -> None:
    """The demo shards through lit_mrl.formats.audio, the sharder's loader: same samples."""
    from data_prep import shard
    from lit_mrl.formats.info import read_info, shard_paths
    from lit_mrl.formats.shards import iter_shard

    demo.shard_corpus(corpus, "tempo")
    manifests = corpus / "manifests"
    code = shard.main([
        "--manifest", str(manifests / "tempo.jsonl"), "--out", str(tmp_path / "tempo"),
        "--dataset", "tempo", "--task", "multiclass",
        "--vocabulary", str(manifests / "tempo.vocab.txt"), "--workers", "0",
    ])  # fmt: skip
    assert code == 0
    ours, theirs = read_info(corpus / "shards" / "tempo"), read_info(tmp_path / "tempo")
    assert ours.vocabulary == theirs.vocabulary
    for split in ours.splits:

        def audio(root, split=split):
            return {s["key"]: s["flac"] for p in shard_paths(root, split) for s in iter_shard(p)}

        assert audio(corpus / "shards" / "tempo") == audio(tmp_path / "tempo")
