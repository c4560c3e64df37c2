"""Manifest fields the sharder keeps or infers: a row's own meta object, the task from the rows."""

import json

import numpy as np
import pytest
import soundfile as sf

from data_prep import shard
from lit_mrl.formats.info import read_info
from lit_mrl.formats.shards import iter_shard

SR = 16000


def error_line(capsys) -> str:
    """The one line the sharder printed on stderr, without the prefix and the --debug hint."""
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line.startswith("python -m data_prep.shard: error: ")
    return line.split(": error: ", 1)[1].split(" (traceback: ")[0]


@pytest.fixture
def three_wavs(tmp_path):
    for name in "abc":
        sf.write(tmp_path / f"{name}.wav", np.zeros(SR // 2, dtype=np.float32), SR)
    return tmp_path


def shard_manifest(folder, name, rows, *extra):
    manifest = folder / name
    if name.endswith(".jsonl"):
        manifest.write_text("".join(json.dumps(row) + "\n" for row in rows))
    else:
        manifest.write_text("".join(line + "\n" for line in rows))
    args = ["--manifest", manifest, "--out", folder / "out", "--workers", 0, *extra]
    return shard.main(list(map(str, args)))


def samples_of(out):
    return {s["key"]: s["json"] for path in sorted(out.glob("*.tar")) for s in iter_shard(path)}


def test_a_manifest_meta_object_is_kept_verbatim(three_wavs, capsys):
    meta = {"artist": "X", "year": 1999, "nested": {"mood": ["calm", None]}}
    rows = [{"path": "a.wav", "labels": ["jazz", "live"], "meta": meta},
            {"path": "b.wav", "labels": ["rock"]}]  # fmt: skip
    assert shard_manifest(three_wavs, "m.jsonl", rows) == 0
    samples = samples_of(three_wavs / "out")
    assert samples["a"]["meta"] == meta
    assert "meta" not in samples["b"]
    capsys.readouterr()


@pytest.mark.parametrize(
    ("name", "rows", "message"),
    [
        ("m.jsonl", [{"path": "a.wav", "meta": "artist=X"}], "m.jsonl:1: 'meta' must be a JSON object, got str"),
        ("m.jsonl", [{"path": "a.wav", "mata": {}}], "m.jsonl:1: unknown key 'mata' (did you mean 'meta'?); known: path, split, labels, targets, key, track_id, meta"),
        ("m.csv", ["path,meta", 'a.wav,"{""artist"": ""X"""'], "m.csv:2: 'meta' is not a JSON object (Expecting ',' delimiter: line 1 column 15 (char 14))"),
        ("m.csv", ["path,meta", "a.wav,[1]"], "m.csv:2: 'meta' must be a JSON object, got list"),
    ],
    ids=["jsonl-string", "jsonl-typo", "csv-bad-json", "csv-list"],
)  # fmt: skip
def test_a_manifest_meta_that_is_not_an_object_is_refused(three_wavs, capsys, name, rows, message):
    assert shard_manifest(three_wavs, name, rows) == 2
    assert error_line(capsys) == f"{three_wavs}/{message}"


def test_a_csv_manifest_meta_column_holds_a_json_object(three_wavs, capsys):
    rows = ["path,labels,meta", 'a.wav,jazz,"{""artist"": ""X""}"', "b.wav,rock,"]
    assert shard_manifest(three_wavs, "m.csv", rows) == 0
    samples = samples_of(three_wavs / "out")
    assert samples["a"]["meta"] == {"artist": "X"}
    assert "meta" not in samples["b"]
    capsys.readouterr()


def test_one_label_per_row_is_multiclass_and_says_so(three_wavs, capsys):
    rows = [
        {"path": f"{n}.wav", "labels": label}
        for n, label in zip("abc", ["x", ["y"], "x"], strict=True)
    ]
    assert shard_manifest(three_wavs, "m.jsonl", rows) == 0
    out = capsys.readouterr().out
    assert (
        "task: multiclass (every row has exactly one label; --task multilabel to override)" in out
    )
    info = read_info(three_wavs / "out")
    assert (info.task, info.vocabulary) == ("multiclass", ["x", "y"])
    assert shard_manifest(three_wavs, "m.jsonl", rows, "--task", "multilabel", "--overwrite") == 0
    assert read_info(three_wavs / "out").task == "multilabel"
    assert "task: multiclass" not in capsys.readouterr().out


@pytest.mark.parametrize(
    ("targets", "names"), [([[0.5], [1.0], [2.0]], ["target"]),
                           ([[0.5, 1], [1.0, 2], [2.0, 3]], ["target_0", "target_1"])]
)  # fmt: skip
def test_a_regression_manifest_needs_no_vocabulary(three_wavs, capsys, targets, names):
    rows = [{"path": f"{n}.wav", "targets": t} for n, t in zip("abc", targets, strict=True)]
    assert shard_manifest(three_wavs, "m.jsonl", rows) == 0
    assert "task: regression (every row has targets and no labels" in capsys.readouterr().out
    info = read_info(three_wavs / "out")
    assert (info.task, info.vocabulary) == ("regression", names)
    assert samples_of(three_wavs / "out")["c"]["targets"] == targets[2]
