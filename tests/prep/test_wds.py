"""Foreign WebDataset tars into lit_mrl shards: labels by field, nothing unsafe read or unpickled."""

import io
import json
import pickle
import tarfile
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from data_prep import verify
from data_prep.datasets import wds
from lit_mrl.formats.info import read_info
from lit_mrl.formats.shards import iter_shard


class Payload:
    """Unpickling this writes a marker file: proof that something was unpickled."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.write_text, (self.marker, "unpickled"))


def audio_bytes(seed: int, fmt: str = "FLAC") -> bytes:
    """Half a second of a seed-dependent tone, encoded as ``fmt``."""
    t = np.arange(8000) / 16000
    buffer = io.BytesIO()
    sf.write(buffer, 0.3 * np.sin(2 * np.pi * (220 + 40 * seed) * t), 16000, format=fmt)
    return buffer.getvalue()


def write_tar(path: Path, members: list[tuple[str, bytes | None]]) -> Path:
    """A tar of ``(name, data)``; data None makes a symlink member."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(path, "w", format=tarfile.GNU_FORMAT) as tar:
        for name, data in members:
            info = tarfile.TarInfo(name)
            if data is None:
                info.type, info.linkname = tarfile.SYMTYPE, "/etc/passwd"
                tar.addfile(info)
            else:
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
    return path


def labels(*names) -> bytes:
    return json.dumps({"labels": list(names), "id": "x"}).encode()


def write_hub_layout(root: Path, marker: Path) -> Path:
    """``train/shard-00000.tar`` and ``test/shard-00000.tar``, as the Hub's audio datasets ship.

    Tars are read in sorted order (test first): the train tar's ``a`` repeats a key.
    """
    write_tar(root / "train" / "shard-00000.tar", [
        ("a.flac", audio_bytes(0)), ("a.json", labels("dog")),  # the key of a test sample
        ("clips/b.wav", audio_bytes(1, "WAV")), ("clips/b.json", json.dumps({"labels": "cat"}).encode()),
        ("c.flac", audio_bytes(2)), ("c.json", json.dumps({"tags": ["dog"]}).encode()),  # no 'labels'
        ("d.json", labels("dog")),  # no audio
        ("e.flac", audio_bytes(3)), ("e.json", b"{broken"), ("e.pyd", pickle.dumps(Payload(marker))),
        ("f.wav", b"RIFF\x00\x00\x00\x00WAVEjunk" * 10), ("f.json", labels("cat")),  # undecodable
        ("../evil.flac", audio_bytes(4)), ("/abs/x.flac", audio_bytes(5)), ("link.flac", None),
        ("model.pickle", pickle.dumps(Payload(marker))), ("weights.pth", b"\x80\x02junk"),
    ])  # fmt: skip
    write_tar(root / "test" / "shard-00000.tar", [
        ("g.flac", audio_bytes(6)), ("g.json", labels("cat")),
        ("a.flac", audio_bytes(7)), ("a.json", labels("dog", "bark")),
    ])  # fmt: skip
    return root


def run(*args) -> int:
    return wds.main([str(arg) for arg in args] + ["--workers", "0"])


def reasons(out: Path, name: str) -> dict[str, str]:
    lines = (out / name).read_text().splitlines()
    return {row["path"]: row["reason"] for row in map(json.loads, lines)}


def test_wds_tars_shard_with_json_labels_and_report_what_they_skip(tmp_path, capsys, monkeypatch):
    root = write_hub_layout(tmp_path / "hub", tmp_path / "PWNED")
    read = []
    extractfile = tarfile.TarFile.extractfile
    monkeypatch.setattr(
        tarfile.TarFile, "extractfile", lambda self, m: read.append(m.name) or extractfile(self, m)
    )
    out = tmp_path / "shards"

    assert run("--root", root, "--out", out, "--label_field", "labels") == 1

    assert not (tmp_path / "PWNED").exists()  # nothing unpickled
    assert sorted(read) == [
        "a.json",
        "a.json",
        "c.json",
        "clips/b.json",
        "d.json",
        "e.json",
        "f.json",
        "g.json",
    ]
    printed = capsys.readouterr().out
    assert "members never read: .pickle=1 .pth=1 .pyd=1; unsafe names: 3" in printed
    info = read_info(out)
    assert (info.task, info.vocabulary) == ("multilabel", ["bark", "cat", "dog"])
    counts = {name: split.num_samples for name, split in info.splits.items()}
    assert counts == {"train": 1, "test": 2}
    samples = {s["key"]: s["json"] for p in sorted(out.glob("*.tar")) for s in iter_shard(p)}
    assert samples["a"]["labels"] == ["dog", "bark"]
    assert (samples["clips_b"]["track_id"], samples["clips_b"]["labels"]) == ("clips/b", ["cat"])
    assert samples["g"]["split"] == "test"
    assert samples["a"]["meta"] == {"tar": "test/shard-00000.tar"}
    assert verify.verify(out).problems == []
    train = root / "train" / "shard-00000.tar"
    errors = {Path(path).name: reason for path, reason in reasons(out, "errors.jsonl").items()}
    assert errors == {
        "c.flac": "no field 'labels' in its .json",
        "e.flac": errors["e.flac"],
        "f.wav": errors["f.wav"],
    }
    assert errors["e.flac"].startswith("its .json member is not valid JSON")
    assert errors["f.wav"].startswith("not decodable audio")
    skipped = reasons(out, "skipped.jsonl")
    assert skipped[f"{train}/d"] == "no audio member (only .json)"
    assert skipped[f"{train}/a.flac"].startswith("key 'a' repeats")
    unsafe = sorted(
        path.split(".tar/", 1)[1] for path, why in skipped.items() if why.startswith("unsafe")
    )
    assert unsafe == ["../evil.flac", "/abs/x.flac", "link.flac"]
    capsys.readouterr()
    assert run("--root", root, "--out", out, "--label_field", "labels") == 1  # resumes
    assert "resuming: 3 inputs already in shards" in capsys.readouterr().out


def test_wds_cls_members_with_class_names_and_the_split_from_the_name(tmp_path, capsys):
    root = tmp_path / "tars"
    write_tar(root / "speech-commands-train-000.tar", [
        ("k1.flac", audio_bytes(0)), ("k1.cls", b"1"),
        ("k2.flac", audio_bytes(1)), ("k2.cls", b"0\n"),
        ("k3.flac", audio_bytes(2)), ("k3.cls", b"7"),  # outside the class list
        ("k4.flac", audio_bytes(3)), ("k4.cls", b"yes"),
    ])  # fmt: skip
    (tmp_path / "names.txt").write_text("no\nyes\n")
    out = tmp_path / "out"

    code = run(
        "--root",
        root,
        "--out",
        out,
        "--label_field",
        ".cls",
        "--class_names",
        tmp_path / "names.txt",
    )

    assert code == 1
    assert "task: multiclass (every row has exactly one label" in capsys.readouterr().out
    info = read_info(out)
    assert (info.task, info.vocabulary, info.splits["train"].num_samples) == (
        "multiclass",
        ["no", "yes"],
        2,
    )
    samples = {s["key"]: s["json"]["labels"] for p in out.glob("*.tar") for s in iter_shard(p)}
    assert samples == {"k1": ["yes"], "k2": ["no"]}
    errors = {Path(path).name: reason for path, reason in reasons(out, "errors.jsonl").items()}
    assert errors == {"k3.flac": ".cls: class 7 outside --class_names (0-1)",
                      "k4.flac": ".cls holds 'yes', not class numbers"}  # fmt: skip


def test_wds_without_labels_is_a_corpus_and_a_cut_off_tar_keeps_what_is_whole(tmp_path, capsys):
    tar = write_tar(tmp_path / "corpus.tar", [(f"t{i}.flac", audio_bytes(i)) for i in range(3)])
    with tarfile.open(tar) as opened:
        last = opened.getmember("t2.flac")
    with open(tar, "r+b") as file:  # the last member's data cut off half-way
        file.truncate(last.offset_data + last.size // 2)
    out = tmp_path / "out"

    assert run("--root", tar, "--out", out) == 2  # no split word in "corpus"
    assert (
        "cannot tell the split from the tar's name or folder: give --split"
        in capsys.readouterr().err
    )

    assert run("--root", tar, "--out", out, "--split", "train") == 1

    info = read_info(out)
    assert (info.task, info.splits["train"].num_samples) == ("none", 2)
    assert sorted(reasons(out, "errors.jsonl").values()) == [
        "not a readable tar after 3 members (unexpected end of data); is it compressed?",
        "tar member 't2.flac' is cut off (truncated tar)",
    ]


def test_wds_a_tar_that_is_not_one_is_listed_and_the_rest_sharded(tmp_path):
    write_tar(tmp_path / "train" / "good.tar", [("a.flac", audio_bytes(0))])
    (tmp_path / "train" / "bad.tar").write_bytes(b"\x1f\x8b" + bytes(2000))  # gzip, not tar
    out = tmp_path / "out"

    assert run("--root", tmp_path, "--out", out) == 1

    assert read_info(out).splits["train"].num_samples == 1
    (reason,) = reasons(out, "errors.jsonl").values()
    assert reason.startswith("not a readable tar after 0 members (")


@pytest.mark.parametrize("field", ["meta.tags.1", "labels.x"])
def test_wds_dotted_label_fields(tmp_path, field):
    data = json.dumps({"meta": {"tags": ["a", "b"]}, "labels": {"x": 3}}).encode()
    write_tar(tmp_path / "val" / "s.tar", [("k.flac", audio_bytes(0)), ("k.json", data)])
    out = tmp_path / "out"

    assert run("--root", tmp_path, "--out", out, "--label_field", field, "--manifest_only") == 0

    (row,) = map(json.loads, (out / "manifest.jsonl").read_text().splitlines())
    assert (row["split"], row["labels"], row["member"]) == (
        "valid",
        ["b" if "tags" in field else "3"],
        "k.flac",
    )


def test_wds_a_label_field_no_sample_has_is_one_line(tmp_path, capsys):
    write_tar(tmp_path / "train.tar", [("k.flac", audio_bytes(0)), ("k.json", labels("a"))])

    assert run("--root", tmp_path, "--out", tmp_path / "out", "--label_field", "label") == 2
    assert (
        "no sample has labels from label: no field 'label' in its .json" in capsys.readouterr().err
    )
