"""Public-dataset adapters on tiny fake trees in each dataset's own layout."""

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from data_prep import verify
from data_prep.datasets import emomusic, giantsteps, gtzan, jamendo, msd, mtat, nsynth
from lit_mrl.formats.info import read_info
from lit_mrl.formats.keys import KEY_NAMES


def write_audio(path: Path, seed: int = 0, seconds: float = 0.3, sample_rate: int = 22050) -> Path:
    """A short noisy tone; the format follows the extension (.wav, .mp3)."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * sample_rate)) / sample_rate
    audio = 0.3 * np.sin(2 * np.pi * (220 + 40 * seed) * t) + 0.01 * rng.standard_normal(len(t))
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, audio.astype(np.float32), sample_rate)
    return path


def run(module, *args) -> int:
    return module.main([str(arg) for arg in args] + ["--workers", "0"])


def manifest(out: Path) -> dict[str, dict]:
    lines = (out / "manifest.jsonl").read_text().splitlines()
    return {row["key"]: row for row in map(json.loads, lines)}


def task_of(out: Path) -> dict:
    return json.loads((out / "task.json").read_text())


def skipped(out: Path) -> dict[str, str]:
    lines = (out / "skipped.jsonl").read_text().splitlines()
    return {row["path"]: row["reason"] for row in map(json.loads, lines)}


def check_shards(out: Path, counts: dict[str, int], task: str) -> None:
    info = read_info(out)
    assert info.task == task
    assert {name: split.num_samples for name, split in info.splits.items()} == counts
    assert info.vocabulary == (out / "vocab.txt").read_text().splitlines()
    assert verify.verify(out).problems == []


def assert_metadata_error(capsys, code: int, *fragments: str) -> None:
    assert code == 2
    err = capsys.readouterr().err
    for fragment in fragments:
        assert fragment in err


# ---------------------------------------------------------------- MagnaTagATune

MTT_TAGS = [
    "guitar",
    "female vocal",
    "no voice",
    *(f"tag{i:02d}" for i in range(47)),
    "rare",
    "never",
]
MTT_CLIPS = [  # clip_id, mp3_path, tags
    (2, "0/a-1-0-29.mp3", ["guitar", "female vocal", *(f"tag{i:02d}" for i in range(47))]),
    (6, "b/b-2-30-59.mp3", ["guitar", "no voice"]),
    (10, "c/c-3-0-29.mp3", ["guitar", "female vocal"]),
    (35644, "6/norine_braun-now_and_zen-08-gently-117-146.mp3", ["guitar"]),  # 0-byte mp3
    (12, "d/d-5-0-29.mp3", ["rare"]),  # no top-50 tag
    (14, "f/f-6-0-29.mp3", ["no voice"]),  # listed, but missing on disk
    (15, "e/e-7-0-29.mp3", ["guitar"]),
]


def write_mtt(root: Path, rows=MTT_CLIPS) -> Path:
    lines = ["\t".join(f'"{v}"' for v in ["clip_id", *MTT_TAGS, "mp3_path"])]
    for clip_id, mp3_path, tags in rows:
        values = [str(clip_id), *("1" if tag in tags else "0" for tag in MTT_TAGS), mp3_path]
        lines.append("\t".join(f'"{v}"' for v in values))
    (root / "mp3").mkdir(parents=True)
    (root / "annotations_final.csv").write_text("\n".join(lines) + "\n")
    for seed, (clip_id, mp3_path, _) in enumerate(rows):
        if clip_id == 35644:
            (root / "mp3" / mp3_path).parent.mkdir(parents=True, exist_ok=True)
            (root / "mp3" / mp3_path).write_bytes(b"")
        elif clip_id != 14:
            write_audio(root / "mp3" / mp3_path, seed)
    return root / "annotations_final.csv"


def test_mtat_top50_split_by_folder_and_skips(tmp_path):
    write_mtt(tmp_path / "mtt")
    out = tmp_path / "shards" / "mtat"
    assert run(mtat, "--root", tmp_path / "mtt", "--out", out) == 1  # the missing clip fails
    task = task_of(out)
    assert task["task"] == "multilabel"
    assert len(task["vocabulary"]) == 50
    assert task["vocabulary"][:3] == ["guitar", "female vocal", "no voice"]  # by frequency
    assert not {"rare", "never"} & set(task["vocabulary"])
    rows = manifest(out)
    assert {key: row["split"] for key, row in rows.items()} == {
        "00002": "train", "00006": "train", "00010": "valid", "00014": "test", "00015": "test",
    }  # fmt: skip
    assert rows["00006"]["labels"] == ["guitar", "no voice"]
    reasons = skipped(out)
    assert "empty" in reasons["6/norine_braun-now_and_zen-08-gently-117-146.mp3"]
    assert "no tag" in reasons["d/d-5-0-29.mp3"]
    errors = [json.loads(line) for line in (out / "errors.jsonl").read_text().splitlines()]
    assert [(Path(e["path"]).name, e["reason"]) for e in errors] == [
        ("f-6-0-29.mp3", "file not found")
    ]
    check_shards(out, {"train": 2, "valid": 1, "test": 1}, "multilabel")


def test_mtat_tag_list_and_keep_untagged(tmp_path):
    write_mtt(tmp_path / "mtt")
    (tmp_path / "tags.txt").write_text("rare\nguitar\n")
    out = tmp_path / "out"
    args = ["--root", tmp_path / "mtt", "--out", out, "--tags", tmp_path / "tags.txt"]
    assert run(mtat, *args, "--keep_untagged", "--manifest_only") == 0
    rows = manifest(out)
    assert task_of(out)["vocabulary"] == ["rare", "guitar"]
    assert (rows["00012"]["labels"], rows["00014"]["labels"]) == (["rare"], [])


def test_mtat_malformed_annotations(tmp_path, capsys):
    annotations = write_mtt(tmp_path / "mtt")
    lines = annotations.read_text().splitlines()
    lines[2] = "\t".join(['"6"'] * 12)
    annotations.write_text("\n".join(lines) + "\n")
    code = run(mtat, "--root", tmp_path / "mtt", "--out", tmp_path / "out")
    assert_metadata_error(
        capsys, code, "annotations_final.csv:3: expected 54 tab-separated fields, got 12"
    )
    (tmp_path / "mtt" / "annotations_final.csv").unlink()
    code = run(mtat, "--root", tmp_path / "mtt", "--out", tmp_path / "out")
    assert_metadata_error(capsys, code, "annotations_final.csv: missing")


# ---------------------------------------------------------------- MTG-Jamendo

JAMENDO_HEADER = "TRACK_ID\tARTIST_ID\tALBUM_ID\tPATH\tDURATION\tTAGS"
JAMENDO = {
    "train": [
        (
            "track_0000214",
            "14/214.mp3",
            ["genre---rock", "instrument---guitar", "mood/theme---happy"],
        ),
        ("track_0001000", "00/1000.mp3", ["genre---pop"]),
    ],
    "validation": [("track_0917542", "42/917542.mp3", ["mood/theme---happy", "genre---pop"])],
    "test": [("track_1026811", "11/1026811.mp3", ["genre---rock", "mood/theme---sad"])],
}


def write_jamendo(root: Path, rows=JAMENDO) -> Path:
    splits = root / "mtg-jamendo-dataset" / "data" / "splits" / "split-0"
    splits.mkdir(parents=True)
    for seed, (split, tracks) in enumerate(rows.items()):
        lines = [JAMENDO_HEADER]
        for track_id, path, tags in tracks:
            lines.append(
                "\t".join([track_id, "artist_000014", "album_000031", path, "124.6", *tags])
            )
            write_audio(root / "audio" / path, seed)
        (splits / f"autotagging_top50tags-{split}.tsv").write_text("\n".join(lines) + "\n")
    return splits


def test_jamendo_multi_tag_tsv(tmp_path):
    splits = write_jamendo(tmp_path)
    out = tmp_path / "jamendo"
    assert run(jamendo, "--root", tmp_path / "audio", "--splits_dir", splits, "--out", out) == 0
    rows = manifest(out)
    assert rows["track_0000214"]["labels"] == [
        "genre---rock", "instrument---guitar", "mood/theme---happy",
    ]  # fmt: skip
    assert rows["track_0917542"]["split"] == "valid"
    assert Path(rows["track_0000214"]["path"]) == tmp_path / "audio" / "14" / "214.mp3"
    assert task_of(out)["vocabulary"] == sorted(
        [
            "genre---pop",
            "genre---rock",
            "instrument---guitar",
            "mood/theme---happy",
            "mood/theme---sad",
        ]
    )
    check_shards(out, {"train": 2, "valid": 1, "test": 1}, "multilabel")


def test_jamendo_low_quality_paths(tmp_path):
    splits = write_jamendo(tmp_path)
    out = tmp_path / "out"
    args = ["--root", tmp_path, "--splits_dir", splits, "--out", out, "--low_quality"]
    assert run(jamendo, *args, "--manifest_only") == 0
    assert manifest(out)["track_0001000"]["path"].endswith("00/1000.low.mp3")


def test_jamendo_malformed_and_duplicate(tmp_path, capsys):
    splits = write_jamendo(tmp_path)
    args = ["--root", tmp_path, "--splits_dir", splits, "--out", tmp_path / "out"]
    test_file = splits / "autotagging_top50tags-test.tsv"
    test_file.write_text(
        f"{JAMENDO_HEADER}\ntrack_0000214\tartist_1\talbum_1\t14/214.mp3\t1.0\tgenre---rock\n"
    )
    assert_metadata_error(
        capsys,
        run(jamendo, *args),
        "autotagging_top50tags-test.tsv:2: track_0000214 is also listed",
    )
    test_file.write_text(f"{JAMENDO_HEADER}\ntrack_0000001\tartist_1\t01/1.mp3\n")
    assert_metadata_error(
        capsys, run(jamendo, *args), "test.tsv:2: expected at least 5 tab-separated fields, got 3"
    )


# ---------------------------------------------------------------- GTZAN

GTZAN_SPLITS = {
    "train": ["blues/blues.00000.wav", "jazz/jazz.00054.wav", "rock/rock.00000.wav"],
    "valid": ["blues/blues.00001.wav"],
    "test": ["rock/rock.00001.wav", "jazz/jazz.00001.wav"],
}


def write_gtzan(root: Path) -> dict[str, Path]:
    files = {}
    for split, paths in GTZAN_SPLITS.items():
        for seed, name in enumerate(paths):
            if name.endswith("jazz.00054.wav"):  # broken in the distribution
                (root / "genres" / "jazz").mkdir(parents=True, exist_ok=True)
                (root / "genres" / name).write_bytes(b"RIFF\x00\x00\x00\x00WAVEjunk")
            else:
                write_audio(root / "genres" / name, seed, sample_rate=22050)
        files[split] = root / f"{split}_filtered.txt"
        files[split].write_text("\n".join(paths) + "\n")
    return files


def gtzan_args(root: Path, files: dict[str, Path], out: Path) -> list:
    args = ["--root", root, "--out", out]
    for split, path in files.items():
        args += [f"--{split}_split", path]
    return args


def test_gtzan_fault_filtered_skips_broken_jazz(tmp_path):
    files = write_gtzan(tmp_path / "gtzan")
    out = tmp_path / "gtzan_shards"
    assert run(gtzan, *gtzan_args(tmp_path / "gtzan", files, out)) == 0
    rows = manifest(out)
    assert rows["rock_00001"] == {
        "path": str(tmp_path / "gtzan" / "genres" / "rock" / "rock.00001.wav"),
        "split": "test", "key": "rock_00001", "track_id": "rock.00001", "labels": ["rock"],
    }  # fmt: skip
    assert "jazz_00054" not in rows
    assert "corrupt" in skipped(out)["jazz/jazz.00054.wav"]
    assert task_of(out)["vocabulary"] == list(gtzan.GENRES)
    check_shards(out, {"train": 2, "valid": 1, "test": 2}, "multiclass")


def test_gtzan_reads_the_tarballs_au_files_as_shipped(tmp_path):
    root = tmp_path / "gtzan"
    files = {}
    for split, paths in GTZAN_SPLITS.items():
        for seed, name in enumerate(paths):  # Sun .au, as in the original tarball
            write_audio(root / "genres" / name.replace(".wav", ".au"), seed)
        files[split] = root / f"{split}_filtered.txt"
        files[split].write_text("\n".join(paths) + "\n")  # the lists name .wav
    out = tmp_path / "shards"

    assert run(gtzan, *gtzan_args(root, files, out)) == 0

    rows = manifest(out)
    assert rows["rock_00001"]["path"] == str(root / "genres" / "rock" / "rock.00001.au")
    assert "jazz_00054" in rows  # only the known-broken .wav copies are skipped
    check_shards(out, {"train": 3, "valid": 1, "test": 2}, "multiclass")


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("blues/rock.00001.wav", "expected '<genre>/<genre>.000NN.wav'"),
        ("polka/polka.00001.wav", "unknown genre 'polka'"),
        ("blues/blues.00000.wav", "blues.00000 is also listed at"),
    ],
)
def test_gtzan_bad_split_lines(tmp_path, capsys, line, message):
    files = write_gtzan(tmp_path / "gtzan")
    files["test"].write_text(f"rock/rock.00001.wav\n{line}\n")
    code = run(gtzan, *gtzan_args(tmp_path / "gtzan", files, tmp_path / "out"))
    assert_metadata_error(capsys, code, f"test_filtered.txt:2: {message}")


# ---------------------------------------------------------------- NSynth

NSYNTH = {
    "train": {
        "bass_synthetic_033-022-050": ("bass", 22),
        "keyboard_acoustic_004-060-025": ("keyboard", 60),
        "guitar_electronic_021-008-100": ("guitar", 8),  # below MIDI 9
    },
    "valid": {
        "organ_electronic_007-121-075": ("organ", 121),  # above MIDI 120
        "flute_synthetic_000-100-127": ("flute", 100),
    },
    "test": {
        "mallet_acoustic_062-009-050": ("mallet", 9),
        "vocal_synthetic_003-120-100": ("vocal", 120),
    },
}


def nsynth_note(name: str, family: str, pitch: int) -> dict:
    instrument = name.rsplit("-", 2)[0]
    return {
        "note": 1, "sample_rate": 16000, "pitch": pitch, "velocity": int(name[-3:]),
        "instrument_source": 1, "instrument_source_str": instrument.split("_")[1],
        "instrument_family": nsynth.FAMILIES.index(family), "instrument_family_str": family,
        "instrument": 7, "instrument_str": instrument, "note_str": name,
        "qualities": [0] * 10, "qualities_str": [],
    }  # fmt: skip


def write_nsynth(root: Path) -> None:
    for seed, (split, notes) in enumerate(NSYNTH.items()):
        folder = root / f"nsynth-{split}"
        for name in notes:
            write_audio(folder / "audio" / f"{name}.wav", seed, sample_rate=16000)
        examples = {name: nsynth_note(name, *value) for name, value in notes.items()}
        (folder / "examples.json").write_text(json.dumps(examples, indent=4))


def test_nsynth_pitch_skips_out_of_range(tmp_path):
    write_nsynth(tmp_path / "nsynth")
    out = tmp_path / "nsynth_pitch"
    assert run(nsynth, "--root", tmp_path / "nsynth", "--task", "pitch", "--out", out) == 0
    vocabulary = task_of(out)["vocabulary"]
    assert vocabulary == [str(pitch) for pitch in range(9, 121)]
    rows = manifest(out)
    assert rows["mallet_acoustic_062-009-050"]["labels"] == ["9"]
    assert rows["vocal_synthetic_003-120-100"]["labels"] == ["120"]
    assert set(skipped(out).values()) == {
        "pitch 8 outside MIDI 9-120", "pitch 121 outside MIDI 9-120",
    }  # fmt: skip
    check_shards(out, {"train": 2, "valid": 1, "test": 2}, "multiclass")


def test_nsynth_family_keeps_every_note(tmp_path):
    write_nsynth(tmp_path / "nsynth")
    out = tmp_path / "fam"
    args = ["--root", tmp_path / "nsynth", "--task", "family", "--out", out, "--manifest_only"]
    assert run(nsynth, *args) == 0
    assert task_of(out)["vocabulary"] == list(nsynth.FAMILIES)
    assert manifest(out)["guitar_electronic_021-008-100"]["labels"] == ["guitar"]
    assert task_of(out)["splits"] == {"train": 3, "valid": 2, "test": 2}


def test_nsynth_malformed_examples(tmp_path, capsys):
    write_nsynth(tmp_path / "nsynth")
    path = tmp_path / "nsynth" / "nsynth-valid" / "examples.json"
    examples = json.loads(path.read_text())
    del examples["flute_synthetic_000-100-127"]["pitch"]
    path.write_text(json.dumps(examples, indent=4))
    args = ["--root", tmp_path / "nsynth", "--task", "pitch", "--out", tmp_path / "out"]
    line = path.read_text().splitlines().index('    "flute_synthetic_000-100-127": {') + 1
    assert_metadata_error(
        capsys, run(nsynth, *args), f"examples.json:{line}: note 'flute_synthetic_000-100-127'"
    )
    path.write_text('{\n  "a": {\n    "pitch": 60,,\n')
    assert_metadata_error(capsys, run(nsynth, *args), "examples.json:3: invalid JSON")


# ---------------------------------------------------------------- GiantSteps

GS_TEST = {"1234749": "Bb major", "677299": "Gb major", "3833050": "f# minor", "945256": "C minor"}
MTG_ROWS = [  # ID, MANUAL KEY, C, ARTIST
    ("5061", "D# minor", "2", "Alpha"),
    ("5881", "Ab major", "2", "Beta, Gamma"),
    ("7217", "F minor", "2", "Gamma"),
    ("10359", "D minor", "2", "Delta"),
    ("11077", "G minor", "2", "Epsilon"),
    ("14344", "E minor", "2", "Zeta"),
    ("16484", "A minor", "1", "Eta"),  # low confidence
    ("10981", "-", "0", "Theta"),  # no key
    ("61578", "C minor / F# minor", "2", "Iota"),  # two keys
    ("945256", "C minor", "2", "Kappa"),  # also in the test set
]


def write_giantsteps(root: Path) -> tuple[Path, Path]:
    test_root, mtg_root = root / "giantsteps-key-dataset", root / "giantsteps-mtg-key-dataset"
    (test_root / "annotations" / "key").mkdir(parents=True)
    for seed, (track_id, key) in enumerate(GS_TEST.items()):
        (test_root / "annotations" / "key" / f"{track_id}.LOFI.key").write_text(key)
        suffix = ".wav" if seed == 0 else ".mp3"  # convert_audio.sh makes .wav
        write_audio(test_root / "audio" / f"{track_id}.LOFI{suffix}", seed)
    (mtg_root / "annotations").mkdir(parents=True)
    annotations = ["ID\tMANUAL KEY\tC", *("\t".join(row[:3]) for row in MTG_ROWS)]
    (mtg_root / "annotations" / "annotations.txt").write_text("\n".join(annotations) + "\n")
    metadata = ["ID\tARTIST\tTITLE", *(f"{row[0]}\t{row[3]}\tsong" for row in MTG_ROWS)]
    (mtg_root / "annotations" / "beatport_metadata.txt").write_text("\n".join(metadata) + "\n")
    for seed, row in enumerate(MTG_ROWS):
        write_audio(mtg_root / "audio" / f"{row[0]}.LOFI.mp3", seed)
    return test_root, mtg_root


def test_giantsteps_keys_sharp_names_and_mtg_train(tmp_path):
    test_root, mtg_root = write_giantsteps(tmp_path)
    out = tmp_path / "gs"
    args = ["--root", test_root, "--mtg_root", mtg_root, "--out", out, "--valid_fraction", "0.5"]
    assert run(giantsteps, *args) == 0
    rows = manifest(out)
    assert task_of(out)["vocabulary"] == list(KEY_NAMES)
    labels = {key: row["labels"][0] for key, row in rows.items()}
    assert [labels[k] for k in ("1234749", "677299", "3833050", "945256", "5881")] == [
        "A# major", "F# major", "F# minor", "C minor", "G# major",
    ]  # fmt: skip
    assert rows["1234749"]["path"].endswith("1234749.LOFI.wav")
    assert {k for k, r in rows.items() if r["split"] == "test"} == set(GS_TEST)
    train_valid = {k: r["split"] for k, r in rows.items() if r["split"] != "test"}
    assert set(train_valid) == {"5061", "5881", "7217", "10359", "11077", "14344"}
    assert set(train_valid.values()) == {"train", "valid"}
    assert train_valid["5881"] == train_valid["7217"]  # shared artist Gamma
    reasons = skipped(out)
    assert "confidence 1" in reasons["audio/16484.LOFI.mp3"]
    assert "confidence 0" in reasons["audio/10981.LOFI.mp3"]  # the "-" rows have C = 0
    assert "no single key" in reasons["audio/61578.LOFI.mp3"]
    assert "test set" in reasons["audio/945256.LOFI.mp3"]
    counts = {s: list(train_valid.values()).count(s) for s in ("train", "valid")}
    check_shards(out, {**counts, "test": 4}, "multiclass")


def test_giantsteps_valid_groups_follow_collaborations():
    artists = {"1": ["a"], "2": ["a", "b"], "3": ["b", "c"], "4": ["c"], "5": ["z"]}
    for fraction in (0.0, 0.3, 0.7, 1.0):
        valid = giantsteps.valid_tracks(list(artists), artists, fraction)
        assert len({track in valid for track in "1234"}) == 1  # one group, one split
    assert giantsteps.valid_tracks(list(artists), artists, 1.0) == set(artists)


def test_giantsteps_bad_key_file(tmp_path, capsys):
    test_root, _ = write_giantsteps(tmp_path)
    (test_root / "annotations" / "key" / "677299.LOFI.key").write_text("H major\n")
    code = run(giantsteps, "--root", test_root, "--out", tmp_path / "out")
    assert_metadata_error(
        capsys, code, "677299.LOFI.key:1: expected a key such as 'Bb major', got 'H major'"
    )


# ---------------------------------------------------------------- Emomusic

EMO_SONGS = {  # song_id: (arousal, valence, Mediaeval 2013 set, artist)
    2: (3.1, 5.0, "development", "Artist A"),
    3: (6.2, 4.4, "development", "Artist B"),
    5: (4.0, 6.6, "development", "Artist C"),
    7: (7.5, 2.5, "development", "Artist D"),
    10: (5.5, 5.5, "evaluation", "Artist E"),
    11: (2.0, 8.0, "evaluation", "Artist F"),
}


def write_emomusic(root: Path) -> Path:
    folder = root / "annotations"
    folder.mkdir(parents=True)
    static = ["song_id, mean_arousal, std_arousal, mean_valence, std_valence"]
    static += [f"{song}, {a}, 0.9, {v}, 1.1" for song, (a, v, *_) in EMO_SONGS.items()]
    (folder / "static_annotations.csv").write_text("\n".join(static) + "\n")
    with open(folder / "songs_info.csv", "w", newline="") as file:
        writer = csv.writer(file)
        writer.writerow(
            ["song_id", "file_name", "Artist", "Song title", "Genre", "Mediaeval 2013 set"]
        )
        for song, (*_, subset, artist) in EMO_SONGS.items():
            writer.writerow([song, f"{song}.mp3", artist, "A song", "Rock", subset])
    for seed, song in enumerate(EMO_SONGS):
        write_audio(root / "clips_45seconds" / f"{song}.mp3", seed)
    return folder / "static_annotations.csv"


def test_emomusic_regression_standardised(tmp_path):
    write_emomusic(tmp_path / "emo")
    out = tmp_path / "emomusic"
    args = ["--root", tmp_path / "emo", "--out", out, "--valid_fraction", "0.5"]
    assert run(emomusic, *args) == 0
    rows, task = manifest(out), task_of(out)
    assert (task["task"], task["vocabulary"]) == ("regression", ["arousal", "valence"])
    assert {rows["0010"]["split"], rows["0011"]["split"]} == {"test"}
    fit = np.array([row["targets"] for row in rows.values() if row["split"] != "test"])
    np.testing.assert_allclose(fit.mean(axis=0), 0.0, atol=1e-9)
    np.testing.assert_allclose(fit.std(axis=0), 1.0)
    mean, std = np.array(task["target_mean"]), np.array(task["target_std"])
    np.testing.assert_allclose(np.array(rows["0011"]["targets"]) * std + mean, [2.0, 8.0])
    counts = {s: sum(r["split"] == s for r in rows.values()) for s in ("train", "valid", "test")}
    check_shards(out, {s: n for s, n in counts.items() if n}, "regression")


def test_emomusic_split_file_raw_targets(tmp_path):
    write_emomusic(tmp_path / "emo")
    split_file = tmp_path / "split.csv"
    split_file.write_text("song_id,split\n2,train\n3,valid\n10,test\n")
    out = tmp_path / "out"
    args = ["--root", tmp_path / "emo", "--out", out, "--split_file", split_file]
    assert run(emomusic, *args, "--targets", "raw", "--manifest_only") == 0
    rows = manifest(out)
    assert {k: (r["split"], r["targets"]) for k, r in rows.items()} == {
        "0002": ("train", [3.1, 5.0]), "0003": ("valid", [6.2, 4.4]), "0010": ("test", [5.5, 5.5]),
    }  # fmt: skip
    assert len(skipped(out)) == 3


def test_emomusic_malformed_static_annotations(tmp_path, capsys):
    static = write_emomusic(tmp_path / "emo")
    lines = static.read_text().splitlines()
    lines[3] = "5, high, 0.9, 6.6, 1.1"
    static.write_text("\n".join(lines) + "\n")
    code = run(emomusic, "--root", tmp_path / "emo", "--out", tmp_path / "out")
    assert_metadata_error(capsys, code, "static_annotations.csv:4: mean_arousal and mean_valence")


# ---------------------------------------------------------------- MSD

MSD_TAGS = ["rock", "pop", "female vocalists"]
MSD_SPLITS = {  # track ids and label rows
    "train": (["TRAAAAK128F9318786", "TRAAAAW128F429D538"], [[1, 0, 1], [0, 1, 0]]),
    "valid": (["TRAAABD128F429CF47"], [[1, 1, 0]]),
    "test": (["TRAAADJ128F4287B47", "TRAAAED128E0783FAB"], [[0, 0, 1], [1, 0, 0]]),
}


def write_msd(root: Path) -> list:
    args = ["--root", root / "audio"]
    (root / "50tagList.txt").write_text("\n".join(MSD_TAGS) + "\n")
    audio_rows = ["track_id\tpath"]
    for seed, (split, (ids, labels)) in enumerate(MSD_SPLITS.items()):
        (root / f"{split}_x_msd_id.txt").write_text("\n".join(ids) + "\n")
        np.save(root / f"{split}_y.npy", np.array(labels, dtype=bool))
        args += [f"--{split}-ids", root / f"{split}_x_msd_id.txt"]
        args += [f"--{split}-labels", root / f"{split}_y.npy"]
        for i, track_id in enumerate(ids):
            if track_id != "TRAAAED128E0783FAB":  # no preview for this one
                path = f"{seed}/{i}/{seed}{i}.clip.mp3"
                write_audio(root / "audio" / path, seed + i)
                audio_rows.append(f"{track_id}\t{path}")
    (root / "audio_paths.tsv").write_text("\n".join(audio_rows) + "\n")
    return [*args, "--audio_list", root / "audio_paths.tsv", "--tags", root / "50tagList.txt"]


def test_msd_choi_split(tmp_path):
    args = write_msd(tmp_path)
    out = tmp_path / "msd"
    assert run(msd, *args, "--out", out) == 0
    rows = manifest(out)
    assert rows["TRAAAAK128F9318786"]["labels"] == ["rock", "female vocalists"]
    assert rows["TRAAABD128F429CF47"]["split"] == "valid"
    assert skipped(out) == {"TRAAAED128E0783FAB": "no audio path in audio_paths.tsv"}
    check_shards(out, {"train": 2, "valid": 1, "test": 1}, "multilabel")


def test_msd_label_matrix_must_match_ids(tmp_path, capsys):
    args = write_msd(tmp_path)
    np.save(tmp_path / "test_y.npy", np.zeros((3, 3), dtype=bool))
    assert_metadata_error(
        capsys,
        run(msd, *args, "--out", tmp_path / "out"),
        "test_y.npy: shape (3, 3), expected (2, 3)",
    )
    (tmp_path / "audio_paths.tsv").write_text("track_id\tpath\nTRAAAAK128F9318786\n")
    assert_metadata_error(
        capsys, run(msd, *args, "--out", tmp_path / "out"), "audio_paths.tsv:2: expected"
    )


# ------------------------------------------------- adapters -> embed -> probe


@pytest.mark.parametrize("dataset", ["gtzan", "emomusic"])
def test_adapter_shards_feed_embed_and_probe(tmp_path, dataset):
    """What an adapter writes is what `embed` and `probe` consume, end to end."""
    from lit_mrl.cli import main as lit_mrl

    out = tmp_path / "shards"
    if dataset == "gtzan":
        files = write_gtzan(tmp_path / "gtzan")
        assert run(gtzan, *gtzan_args(tmp_path / "gtzan", files, out)) == 0
    else:
        write_emomusic(tmp_path / "emo")
        assert (
            run(emomusic, "--root", tmp_path / "emo", "--out", out, "--valid_fraction", "0.5") == 0
        )
    root = Path(__file__).resolve().parents[2]
    code = lit_mrl([
        "embed", "--random_init", str(root / "configs/demo/contrastive.yaml"), "--seed", "0",
        "--input", str(out), "--out", str(tmp_path / "emb"), "--num_workers", "0",
    ])  # fmt: skip
    assert code == 0
    results = tmp_path / "results"
    code = lit_mrl([
        "probe", "--embeddings", str(tmp_path / "emb"), "--out", str(results), "--epochs", "2",
        "--min_steps", "10", "--seeds", "1", "--bootstrap", "50", "--wandb", "false",
    ])  # fmt: skip
    assert code == 0
    test_metrics = json.loads((results / "results.json").read_text())["test"]
    assert ("accuracy" if dataset == "gtzan" else "r2") in test_metrics
