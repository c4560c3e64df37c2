"""AudioSet from its official CSVs and a folder of downloaded segments, named as downloaders do."""

import csv
import json
from pathlib import Path

import pytest

from data_prep import verify
from data_prep.datasets import audioset
from data_prep.datasets.metadata import stable_fraction
from lit_mrl.formats.info import read_info

CLASSES = [("/m/09x0r", "Speech"), ("/m/04rlf", "Music"), ("/m/04szw", "Musical instrument"),
           ("/m/0jbk", "Animal")]  # fmt: skip
ONTOLOGY = [
    {"id": "/m/09x0r", "name": "Speech", "child_ids": []},
    {"id": "/m/04rlf", "name": "Music", "child_ids": ["/m/04szw"]},
    {"id": "/m/04szw", "name": "Musical instrument", "child_ids": ["/m/04rlf"]},  # a cycle
    {"id": "/m/0jbk", "name": "Animal", "child_ids": []},
]
# csv -> (YTID, start, end, labels, the file written for it under audio/ or None)
SEGMENTS = {
    "balanced_train": [
        ("--PJHxphWEs", 30, 40, "/m/09x0r,/m/04rlf", "bal/--PJHxphWEs_30.000_40.000.wav"),
        ("0a1b2c3d4e5", 0, 10, "/m/04szw", "bal/Y0a1b2c3d4e5.wav"),  # a mirror's Y prefix
        ("a_b-c_d_e_f", 30, 40, "/m/0jbk", "a_b-c_d_e_f_30.flac"),  # "_" in the YTID
        ("gone1234567", 10, 20, "/m/09x0r", None),  # never downloaded
        ("broken12345", 10, 20, "/m/04rlf", "bal/broken12345.wav"),  # not audio
    ],
    "unbalanced_train": [
        ("unbal000001", 5, 15, "/m/04rlf", "unbal/unbal000001.ogg"),
        ("unbal000002", 5, 15, "/m/0jbk", None),
    ],
    "eval": [
        ("eval0000001", 30, 40, "/m/04rlf,/m/04szw", "eval/eval0000001_30000_40000.wav"),  # ms
        ("eval0000002", 30, 40, "/m/09x0r", "eval/eval0000002_10_20.wav"),  # other times
    ],
}


def write_audioset(root: Path, make_audio) -> Path:
    with open(root / "class_labels_indices.csv", "w", newline="") as file:
        writer = csv.writer(file, quoting=csv.QUOTE_MINIMAL)
        writer.writerow(["index", "mid", "display_name"])
        writer.writerows((i, mid, name) for i, (mid, name) in enumerate(CLASSES))
    (root / "ontology.json").write_text(json.dumps(ONTOLOGY))
    for seed, (name, rows) in enumerate(SEGMENTS.items()):
        lines = ["# Segments csv created Sun Mar  5 10:54:25 2017",
                 f"# num_ytids={len(rows)}, num_segs={len(rows)}, num_unique_labels=4",
                 "# YTID, start_seconds, end_seconds, positive_labels"]  # fmt: skip
        for index, (ytid, start, end, labels, audio) in enumerate(rows):
            lines.append(f'{ytid}, {start:.3f}, {end:.3f}, "{labels}"')
            if audio is None:
                continue
            path = root / "audio" / audio
            if ytid.startswith("broken"):
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text("<html>removed</html>\n" * 20)
            else:
                make_audio(path, 10 * seed + index, seconds=0.5)
        (root / f"{name}_segments.csv").write_text("\n".join(lines) + "\n")
    make_audio(root / "audio" / "extra" / "--PJHxphWEs.flac")  # a second file of one segment
    make_audio(root / "audio" / "notlisted12.wav")  # a download of a segment no CSV lists
    return root / "audio"


def run(*args) -> int:
    return audioset.main([str(arg) for arg in args] + ["--workers", "0"])


def rows_of(out: Path) -> dict[str, dict]:
    lines = (out / "manifest.jsonl").read_text().splitlines()
    return {row["key"]: row for row in map(json.loads, lines)}


def expected_split(ytid: str, csv_name: str, fraction: float) -> str:
    if csv_name == "eval":
        return "test"
    return "valid" if stable_fraction(f"audioset-valid:{ytid}") < fraction else "train"


def test_audioset_finds_every_naming_scheme_and_lists_the_missing(tmp_path, make_audio, capsys):
    audio = write_audioset(tmp_path, make_audio)
    out = tmp_path / "shards"

    code = run("--root", tmp_path, "--audio_dir", audio, "--out", out, "--valid_fraction", 0.5)

    assert code == 1  # the broken download; the missing ones do not fail the run
    printed = capsys.readouterr().out
    assert "missing: 3 of 9 listed tracks have no audio file" in printed
    rows = rows_of(out)
    found = [
        "--PJHxphWEs",
        "0a1b2c3d4e5",
        "a_b-c_d_e_f",
        "broken12345",
        "unbal000001",
        "eval0000001",
    ]
    assert sorted(rows) == sorted(found)
    assert rows["--PJHxphWEs"]["labels"] == ["Speech", "Music"]
    assert rows["--PJHxphWEs"]["meta"] == {
        "csv": "balanced_train",
        "start_seconds": 30.0,
        "end_seconds": 40.0,
    }
    assert Path(rows["0a1b2c3d4e5"]["path"]).name == "Y0a1b2c3d4e5.wav"
    for ytid, row in rows.items():
        csv_name = next(name for name, segs in SEGMENTS.items() if ytid in [s[0] for s in segs])
        assert row["split"] == expected_split(ytid, csv_name, 0.5)
    assert sorted(k for k, row in rows.items() if row["split"] == "valid") == [
        "a_b-c_d_e_f",
        "broken12345",
    ]
    with open(out / "missing.csv", newline="") as file:
        missing = {row["track_id"]: row for row in csv.DictReader(file)}
    assert sorted(missing) == ["eval0000002", "gone1234567", "unbal000002"]
    assert missing["eval0000002"]["split"] == "test"
    skipped = [json.loads(line) for line in (out / "skipped.jsonl").read_text().splitlines()]
    reasons = {Path(s["path"]).name: s["reason"] for s in skipped}
    assert (
        "times in the name differ from eval_segments.csv:5 (30-40 s)"
        in reasons["eval0000002_10_20.wav"]
    )
    assert reasons["--PJHxphWEs.flac"].startswith("another file of segment --PJHxphWEs is used")
    errors = [json.loads(line) for line in (out / "errors.jsonl").read_text().splitlines()]
    assert [Path(e["path"]).name for e in errors] == ["broken12345.wav"]
    assert "not audio (starts like an HTML page)" in errors[0]["reason"]
    info = read_info(out)
    assert info.vocabulary == ["Speech", "Music", "Musical instrument", "Animal"]
    assert sum(split.num_samples for split in info.splits.values()) == 5
    assert verify.verify(out).problems == []
    task = json.loads((out / "task.json").read_text())
    assert (task["missing"], task["skipped"]) == (3, 2)


def test_audioset_balanced_only_subtree_and_mids(tmp_path, make_audio, capsys):
    audio = write_audioset(tmp_path, make_audio)
    out = tmp_path / "music"
    args = ["--root", tmp_path, "--audio_dir", audio, "--out", out, "--manifest_only"]

    assert run(*args, "--balanced_only", "--subtree", "/m/04rlf", "--label_names", "mid") == 0

    assert "--subtree /m/04rlf: 3 segments have no class under it" in capsys.readouterr().out
    rows = rows_of(out)
    assert sorted(rows) == ["--PJHxphWEs", "0a1b2c3d4e5", "broken12345", "eval0000001"]
    assert rows["--PJHxphWEs"]["labels"] == ["/m/04rlf"]  # Speech is outside the subtree
    assert json.loads((out / "task.json").read_text())["vocabulary"] == ["/m/04rlf", "/m/04szw"]


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ('abc, 30.000, "/m/09x0r"', "balanced_train_segments.csv:4: expected YTID, start, end"),
        ('abc, 40.000, 30.000, "/m/09x0r"', "balanced_train_segments.csv:4: times 40.000-30.000"),
        (
            'abc, 30.000, 40.000, "/m/nope"',
            "balanced_train_segments.csv:4: unknown label '/m/nope'",
        ),
        ('a?c, 30.000, 40.000, "/m/09x0r"', "balanced_train_segments.csv:4: YTID 'a?c' is not"),
    ],
)
def test_audioset_malformed_segments_are_one_line(tmp_path, make_audio, capsys, line, message):
    write_audioset(tmp_path, make_audio)
    path = tmp_path / "balanced_train_segments.csv"
    lines = path.read_text().splitlines()
    path.write_text("\n".join([*lines[:3], line]) + "\n")

    assert run("--root", tmp_path, "--out", tmp_path / "o", "--manifest_only") == 2
    assert message in capsys.readouterr().err


def test_audioset_without_the_unbalanced_csv_names_it(tmp_path, make_audio, capsys):
    write_audioset(tmp_path, make_audio)
    (tmp_path / "unbalanced_train_segments.csv").unlink()

    assert run("--root", tmp_path, "--out", tmp_path / "o") == 2
    assert "unbalanced_train_segments.csv: missing AudioSet" in capsys.readouterr().err


def test_audioset_reads_an_m4a_download(tmp_path, make_audio):
    av = pytest.importorskip("av")  # the ffmpeg extra
    import numpy as np

    write_audioset(tmp_path, make_audio)
    path = tmp_path / "audio" / "unbal" / "unbal000002.m4a"
    with av.open(str(path), "w") as container:
        stream = container.add_stream("aac", rate=48000)
        stream.layout = "mono"
        frame = av.AudioFrame.from_ndarray(
            np.zeros((1, 24000), np.float32), format="fltp", layout="mono"
        )
        frame.sample_rate = 48000
        for packet in [*stream.encode(frame), *stream.encode(None)]:
            container.mux(packet)
    out = tmp_path / "out"

    assert (
        run("--root", tmp_path, "--audio_dir", tmp_path / "audio", "--out", out) == 1
    )  # the broken one

    assert "unbal000002" in {key for key in rows_of(out)}
    assert "unbal000002" not in (out / "missing.csv").read_text()
    assert len(verify.verify(out).keys) == 6
