"""MTG-Jamendo's full tracks as a pre-training corpus: every track of raw_30s.tsv, no per-task filter."""

import json
from pathlib import Path

from data_prep import verify
from data_prep.datasets import jamendo
from lit_mrl.formats.info import read_info

HEADER = "TRACK_ID\tARTIST_ID\tALBUM_ID\tPATH\tDURATION\tTAGS"
# track_id, path, tags, seconds (None: listed, not downloaded; 0: a broken file)
TRACKS = [
    ("track_0000214", "14/214.mp3", ["genre---rock", "instrument---guitar"], 3.0),  # a "full" track
    ("track_0001000", "00/1000.mp3", [], 0.5),  # no tags: still corpus material
    ("track_0917542", "42/917542.mp3", ["mood/theme---happy"], 0.5),
    ("track_1026811", "11/1026811.mp3", ["genre---pop"], None),
    ("track_1100000", "00/1100000.mp3", ["genre---pop"], 0),
]


def write_raw_30s(root: Path, make_audio) -> Path:
    lines = [HEADER]
    for seed, (track_id, path, tags, seconds) in enumerate(TRACKS):
        lines.append("\t".join([track_id, "artist_000014", "album_000031", path, "200.0", *tags]))
        if seconds:
            make_audio(root / "audio" / path, seed, seconds=seconds, sample_rate=22050)
        elif seconds == 0:
            (root / "audio" / path).write_bytes(b"ID3\x04" + bytes(500))
    tracks = root / "mtg-jamendo-dataset" / "data" / "raw_30s.tsv"
    tracks.parent.mkdir(parents=True)
    tracks.write_text("\n".join(lines) + "\n")
    return tracks


def run(*args) -> int:
    return jamendo.main([str(arg) for arg in args] + ["--workers", "0"])


def test_jamendo_raw_30s_is_a_train_corpus_with_all_tags(tmp_path, make_audio):
    tracks = write_raw_30s(tmp_path, make_audio)
    out = tmp_path / "corpus"

    assert run("--root", tmp_path / "audio", "--tracks", tracks, "--out", out) == 1

    info = read_info(out)
    assert (info.task, list(info.splits)) == ("multilabel", ["train"])
    assert info.splits["train"].num_samples == 3
    assert info.vocabulary == [
        "genre---pop",
        "genre---rock",
        "instrument---guitar",
        "mood/theme---happy",
    ]
    rows = {
        row["key"]: row
        for row in map(json.loads, (out / "manifest.jsonl").read_text().splitlines())
    }
    assert rows["track_0001000"]["labels"] == []
    errors = [
        json.loads(line)["reason"] for line in (out / "errors.jsonl").read_text().splitlines()
    ]
    assert sorted(e.split(" (")[0] for e in errors) == ["file not found", "not decodable audio"]
    assert info.splits["train"].seconds > 3.9  # the whole 3 s track, not a clip of it
    assert verify.verify(out).problems == []


def test_jamendo_corpus_without_labels_trains(tmp_path, make_audio, capsys):
    from lit_mrl.data.datamodule import ShardDataModule

    tracks = write_raw_30s(tmp_path, make_audio)
    out = tmp_path / "corpus"
    args = ["--root", tmp_path / "audio", "--tracks", tracks, "--out", out, "--no_labels"]
    assert run(*args, "--max_seconds", 2.0) == 1
    info = read_info(out)
    assert (info.task, info.vocabulary) == ("none", [])
    assert info.splits["train"].seconds < 3.1  # 2 s of the long track

    data = ShardDataModule(
        str(out), batch_size=2, num_workers=0, clip_seconds=0.4, num_views=2, seed=0
    )
    batch = next(iter(data.train_dataloader()))

    assert tuple(batch["audio"].shape) == (2, 2, round(0.4 * info.sample_rate))
    capsys.readouterr()


def test_jamendo_subset_belongs_to_splits_dir(tmp_path, make_audio, capsys):
    tracks = write_raw_30s(tmp_path, make_audio)

    assert (
        run("--root", tmp_path, "--tracks", tracks, "--subset", "genre", "--out", tmp_path / "o")
        == 2
    )
    assert "--subset applies to --splits_dir, not --tracks" in capsys.readouterr().err
