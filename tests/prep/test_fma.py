"""FMA from fma_metadata (tracks.csv with its 3-row header, genres.csv) and the 000/000002.mp3 folders."""

import csv
import json
from pathlib import Path

import pytest

from data_prep import verify
from data_prep.datasets import fma
from lit_mrl.formats.info import read_info

GENRES = [(10, 0, "Pop"), (12, 0, "Rock"), (21, 0, "Hip-Hop"), (25, 12, "Punk"),
          (76, 10, "Experimental Pop")]  # fmt: skip
# track_id, set.split, set.subset, track.genre_top, track.genres_all, audio ("ok", "broken", None)
TRACKS = [
    (2, "training", "small", "Hip-Hop", "[21]", "ok"),
    (3, "training", "medium", "Hip-Hop", "[21]", "ok"),
    (5, "validation", "small", "Pop", "[10]", "ok"),
    (10, "test", "small", "Pop", "[10, 76]", "ok"),
    (20, "training", "large", "", "[10, 12, 25]", "ok"),  # two top-level genres: no genre_top
    (26, "test", "large", "Rock", "[12, 25]", None),  # not downloaded
    (30, "training", "small", "Rock", "[12]", "broken"),
]
HEADER = [
    ["", "album", "set", "set", "track", "track", "track", "track"],
    ["", "title", "split", "subset", "genre_top", "genres", "genres_all", "title"],
    ["track_id", "", "", "", "", "", "", ""],
]


def write_fma(root: Path, make_audio, tracks=TRACKS) -> Path:
    metadata = root / "fma_metadata"
    metadata.mkdir(parents=True)
    with open(metadata / "genres.csv", "w", newline="") as file:
        writer = csv.writer(file)
        writer.writerow(["genre_id", "#tracks", "parent", "title", "top_level"])
        writer.writerows((gid, 100, parent, title, gid if parent == 0 else parent)
                         for gid, parent, title in GENRES)  # fmt: skip
    with open(metadata / "tracks.csv", "w", newline="") as file:
        writer = csv.writer(file)
        writer.writerows(HEADER)
        for tid, split, subset, top, genres, audio in tracks:
            title = "two\nlines, quoted" if tid == 3 else f"song {tid}"  # multi-line fields occur
            writer.writerow([tid, "album", split, subset, top, genres, genres, title])
            path = root / "fma_large" / f"{tid:06d}"[:3] / f"{tid:06d}.mp3"
            if audio == "ok":
                make_audio(path, seed=tid, seconds=0.5)
            elif audio == "broken":
                path.write_bytes(b"ID3\x03\x00\x00\x00\x00\x00\x00" + bytes(300))
    return metadata


def run(*args) -> int:
    return fma.main([str(arg) for arg in args] + ["--workers", "0"])


def manifest(out: Path) -> dict[str, dict]:
    return {
        row["key"]: row
        for row in map(json.loads, (out / "manifest.jsonl").read_text().splitlines())
    }


def test_fma_top_genres_official_split_with_missing_and_broken_tracks(tmp_path, make_audio, capsys):
    write_fma(tmp_path, make_audio)
    out = tmp_path / "shards"

    assert run("--root", tmp_path, "--out", out, "--labels", "top") == 1

    assert f"audio: {tmp_path / 'fma_large'}" in capsys.readouterr().out
    rows = manifest(out)
    assert sorted(rows) == ["000002", "000003", "000005", "000010", "000026", "000030"]
    assert (rows["000005"]["split"], rows["000005"]["labels"]) == ("valid", ["Pop"])
    assert rows["000002"]["path"] == str(tmp_path / "fma_large" / "000" / "000002.mp3")
    skipped = [json.loads(line) for line in (out / "skipped.jsonl").read_text().splitlines()]
    assert [Path(s["path"]).name for s in skipped] == ["000020.mp3"]
    errors = {
        Path(e["path"]).name: e["reason"]
        for e in map(json.loads, (out / "errors.jsonl").read_text().splitlines())
    }
    assert errors["000026.mp3"] == "file not found"
    assert errors["000030.mp3"].startswith("not decodable audio")
    info = read_info(out)
    assert (info.task, info.vocabulary) == ("multiclass", ["Hip-Hop", "Pop", "Rock"])
    assert {name: split.num_samples for name, split in info.splits.items()} == {
        "train": 2,
        "valid": 1,
        "test": 1,
    }
    assert verify.verify(out).problems == []


def test_fma_all_genres_of_the_small_subset(tmp_path, make_audio):
    write_fma(tmp_path, make_audio)
    out = tmp_path / "out"

    assert (
        run(
            "--root",
            tmp_path,
            "--out",
            out,
            "--labels",
            "all",
            "--subset",
            "small",
            "--manifest_only",
        )
        == 0
    )

    rows = manifest(out)
    assert sorted(rows) == ["000002", "000005", "000010", "000030"]
    assert rows["000010"]["labels"] == ["Pop", "Experimental Pop"]
    task = json.loads((out / "task.json").read_text())
    assert (task["task"], task["vocabulary"]) == (
        "multilabel",
        ["Pop", "Rock", "Hip-Hop", "Experimental Pop"],
    )


@pytest.mark.parametrize(
    ("genres_all", "message"),
    [
        ("[21, 'x']", "tracks.csv:4: track.genres_all \"[21, 'x']\" is not a list of ids"),
        ("[99]", "tracks.csv:4: genre 99 is not in genres.csv"),
        ("__import__('pathlib').Path('{marker}').touch()", "is not a list of ids"),
    ],
)
def test_fma_list_literals_are_parsed_never_evaluated(
    tmp_path, make_audio, capsys, genres_all, message
):
    marker = tmp_path / "PWNED"
    write_fma(
        tmp_path,
        make_audio,
        [(2, "training", "small", "Hip-Hop", genres_all.format(marker=marker), None)],
    )

    assert run("--root", tmp_path, "--out", tmp_path / "o") == 2

    assert message in capsys.readouterr().err
    assert not marker.exists()


def test_fma_tracks_csv_without_the_three_row_header_is_one_line(tmp_path, make_audio, capsys):
    metadata = write_fma(tmp_path, make_audio)
    (metadata / "tracks.csv").write_text("track_id,genre_top\n2,Hip-Hop\n")

    assert run("--root", tmp_path, "--out", tmp_path / "o") == 2
    assert "tracks.csv:1: no column set.split (expected the 3-row header" in capsys.readouterr().err
