"""Data a user crafted by hand (tarfile, soundfile, numpy, json; never lit_mrl's writers).

Each test builds the bad input at test time and checks the exact outcome: the error (one
line naming the file and the field), the exit code, and that no wrong number gets through.
"""

import io
import json
import os
import tarfile
import warnings

import numpy as np
import pytest
import soundfile as sf
import torch

from lit_mrl.cli import main
from lit_mrl.data.crops import Span, read_spans
from lit_mrl.formats.shards import ShardChangedError, iter_shard

SR = 16000


def one_line(capsys) -> str:
    """The single line a command printed on stderr."""
    (line,) = capsys.readouterr().err.strip().splitlines()
    return line


def wav_bytes(seed: int, samples: int = SR // 2) -> bytes:
    """A WAV file of noise: every seed gives the same number of bytes."""
    audio = np.random.default_rng(seed).uniform(-0.5, 0.5, samples)
    buffer = io.BytesIO()
    sf.write(buffer, audio, SR, format="WAV", subtype="PCM_16")
    return buffer.getvalue()


def write_tar(path, members) -> None:
    """A plain tar of ``(name, bytes)`` members with fixed metadata."""
    with tarfile.open(path, "w", format=tarfile.USTAR_FORMAT) as tar:
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.size, info.mtime = len(data), 1_700_000_000
            tar.addfile(info, io.BytesIO(data))


def members(*tracks):
    """``{key}.flac`` (a WAV inside: same size for every key) and ``{key}.json`` per track."""
    out = []
    for key, seed in tracks:
        out += [
            (f"{key}.flac", wav_bytes(seed)),
            (f"{key}.json", json.dumps({"labels": []}).encode()),
        ]
    return out


def write_info(root, shards: dict[str, list[str]], sizes: dict[str, list[int]]) -> None:
    splits = {
        split: {"num_samples": sum(sizes[split]), "seconds": 0.5 * sum(sizes[split]),
                "shards": names, "shard_num_samples": sizes[split]}
        for split, names in shards.items()
    }  # fmt: skip
    info = {"format_version": 1, "dataset": "x", "sample_rate": SR, "task": "none",
            "vocabulary": [], "total_seconds": 0.0, "splits": splits}  # fmt: skip
    (root / "info.json").write_text(json.dumps(info))


def decoded(seed: int) -> np.ndarray:
    return sf.read(io.BytesIO(wav_bytes(seed)), dtype="float32")[0]


# 1. a shard replaced on disk after it was scanned


@pytest.mark.parametrize("keep_mtime", [True, False])
def test_a_shard_replaced_after_its_scan_is_an_error_not_another_tracks_audio(tmp_path, keep_mtime):
    shard = tmp_path / "x-train-000000.tar"
    write_tar(shard, members(("a", 1), ("b", 2)))
    refs = {s["key"]: s["flac"] for s in iter_shard(shard, audio="ref")}
    np.testing.assert_array_equal(
        read_spans(refs["a"], [Span(0, 100, 0)], 100)[0], decoded(1)[:100]
    )
    before = os.stat(shard)
    write_tar(shard, members(("b", 2), ("a", 1)))  # same size, same offsets, swapped tracks
    if keep_mtime:  # as `cp -p` or rsync -t would: only the tar header can tell
        os.utime(shard, ns=(before.st_atime_ns, before.st_mtime_ns))
    else:
        os.utime(shard, ns=(before.st_atime_ns, before.st_mtime_ns + 10**9))
    detail = (
        "the member at byte 512 is 'b.flac' (16044 bytes), not 'a.flac' (16044 bytes)"
        if keep_mtime
        else "modified since (another modification time)"
    )
    with pytest.raises(ShardChangedError) as error:
        read_spans(refs["a"], [Span(0, 100, 0)], 100)
    assert str(error.value) == (
        f"{shard}: changed on disk since it was read (sample 'a'): {detail}"
    )


def test_a_shard_of_another_size_is_an_error(tmp_path):
    shard = tmp_path / "x-train-000000.tar"
    write_tar(shard, members(("a", 1)))
    (ref,) = (s["flac"] for s in iter_shard(shard, audio="ref"))
    size = os.path.getsize(shard)
    write_tar(shard, members(("a", 1), ("b", 2)))
    with pytest.raises(ShardChangedError, match=rf"sample 'a'\): {size} bytes then, \d+ now$"):
        read_spans(ref, [Span(0, 10, 0)], 10)


def test_the_training_stream_skips_a_changed_shard_with_one_warning(tmp_path):
    from lit_mrl.data.stream import CropSample, ShardSamples

    shard = tmp_path / "x-train-000000.tar"
    write_tar(shard, members(("a", 1), ("b", 2), ("c", 3)))
    samples = list(ShardSamples({shard.name: 3})([{"url": str(shard)}]))  # scanned
    stat = os.stat(shard)
    write_tar(shard, members(("c", 3), ("b", 2), ("a", 1)))
    os.utime(shard, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    crop = CropSample(100, 1, 0, "none", [], SR, train=False)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        out = list(crop(samples))
    # 'b' lies where it was, but it came from a scan of a shard that is gone: skipped too
    assert out == []
    (warning,) = caught
    assert str(warning.message) == (
        f"skipping a broken shard: {shard}: changed on disk since it was read (sample 'a'): "
        "the member at byte 512 is 'c.flac' (16044 bytes), not 'a.flac' (16044 bytes); the "
        "other samples read from it before the change are skipped too (the next pass reads "
        "it afresh)"
    )
    again = list(crop(ShardSamples({shard.name: 3})([{"url": str(shard)}])))  # a new scan
    assert [item["key"] for item in again] == ["c", "b", "a"]
    np.testing.assert_array_equal(again[2]["audio"][0].numpy(), decoded(1)[SR // 4 - 50 :][:100])


def test_embed_counts_the_tracks_of_a_changed_shard_as_failed(
    tiny_checkpoint, tmp_path, capsys, monkeypatch
):
    import lit_mrl.embed.sources as sources

    data = tmp_path / "data"
    data.mkdir()
    shard = data / "x-test-000000.tar"
    write_tar(shard, members(("a", 1), ("b", 2), ("c", 3)))
    write_info(data, {"test": [shard.name]}, {"test": [3]})
    replacement = tmp_path / "replacement.tar"
    write_tar(replacement, members(("a", 1), ("c", 3), ("b", 2)))
    original, calls = sources.flac_blocks, []

    def replace_after_first_track(source, *args):
        calls.append(source.key)
        if len(calls) == 2:  # 'b' was located in the old file; now the shard is replaced
            stat = os.stat(shard)  # by a copy that kept the modification time
            os.utime(replacement, ns=(stat.st_atime_ns, stat.st_mtime_ns))
            os.replace(replacement, shard)
        return original(source, *args)

    monkeypatch.setattr(sources, "flac_blocks", replace_after_first_track)
    out = tmp_path / "emb"
    args = ["embed", "--checkpoint", str(tiny_checkpoint), "--input", str(data), "--out", str(out),
            "--num_workers", "0", "--trainer.accelerator", "cpu"]  # fmt: skip
    assert main(args) == 1
    errors = [json.loads(line) for line in (out / "errors.jsonl").read_text().splitlines()]
    assert [(e["key"], e["error"]) for e in errors] == [
        ("b", f"{shard}: changed on disk since it was read (sample 'b'): the member at byte "
              "18432 is 'c.flac' (16044 bytes), not 'b.flac' (16044 bytes)"),
        ("c", f"{shard}: changed on disk since it was read (sample 'c'): the member at byte "
              "36352 is 'b.flac' (16044 bytes), not 'c.flac' (16044 bytes)"),
    ]  # fmt: skip
    capsys.readouterr()


def test_an_empty_flac_member_is_named_without_a_python_repr(tmp_path):
    from lit_mrl.embed.sources import flac_blocks

    shard = tmp_path / "x-train-000000.tar"
    write_tar(shard, [("a.flac", b""), ("a.json", b"{}")])
    (sample,) = iter_shard(shard, audio="ref")
    with pytest.raises(ValueError, match=r"^cannot decode audio: 0 bytes$"):
        next(flac_blocks(sample["flac"], SR, 1000))
    write_tar(shard, [("a.flac", b"not audio at all"), ("a.json", b"{}")])
    (sample,) = iter_shard(shard, audio="ref")
    with pytest.raises(ValueError, match=r"^cannot decode audio: Format not recognised\.$"):
        read_spans(sample["flac"], [Span(0, 10, 0)], 10)


# 2. embedding stores are read through their index; 3. finite or refused


def craft_part(path, keys, embeddings, labels, windows=None):
    """An embeddings part written with numpy alone: one window per track unless given."""
    embeddings = np.asarray(embeddings, dtype=np.float32)
    timeline = embeddings if windows is None else np.asarray(windows, dtype=np.float32)
    arrays = {
        "keys": np.array(keys), "embeddings": embeddings, "labels": np.asarray(labels),
        "timeline": timeline, "offsets": np.arange(len(keys) + 1, dtype=np.int64),
        "timestamps": np.full(len(timeline), 1.5, dtype=np.float32),
    }  # fmt: skip
    np.savez(path, **arrays)
    return arrays


def craft_index(root, task, vocabulary, dim, parts):
    """``index.json`` by hand; digests with the documented function (anyone can compute it)."""
    from lit_mrl.formats.embeddings import array_digest

    splits = {}
    for name, arrays in parts.items():
        split = name.split("-")[0]
        entry = {"name": name, "num_samples": len(arrays["keys"]),
                 "num_windows": len(arrays["timeline"]),
                 "digests": {k: array_digest(v) for k, v in arrays.items()}}  # fmt: skip
        splits.setdefault(split, {"parts": []})["parts"].append(entry)
    index = {"format_version": 2, "embed_dim": dim, "task": task, "vocabulary": vocabulary,
             "input": "/data/toy", "splits": splits}  # fmt: skip
    (root / "index.json").write_text(json.dumps(index))


def toy_store(root, task="multiclass", dim=4, size=16, change=None):
    """A multiclass store (3 classes) crafted by hand; ``change(split, arrays)`` edits a part."""
    rng = np.random.default_rng(0)
    root.mkdir(exist_ok=True)
    parts = {}
    for split in ("train", "valid", "test"):
        classes = np.arange(size) % 3
        emb = np.eye(3, dim)[classes] + 0.1 * rng.standard_normal((size, dim))
        labels = classes if task == "multiclass" else np.eye(3)[classes].astype(np.float32)
        arrays = {"keys": [f"{split}{i}" for i in range(size)], "embeddings": emb,
                  "labels": labels}  # fmt: skip
        if change is not None:
            change(split, arrays)
        parts[f"{split}-000000.npz"] = craft_part(root / f"{split}-000000.npz", **arrays)
    craft_index(root, task, ["a", "b", "c"], dim, parts)
    return root


def probe(root, out, *extra):
    args = ["probe", "--embeddings", str(root), "--out", str(out), "--wandb", "false"]
    return main([*args, "--seeds", "1", "--steps", "20", "--bootstrap", "20", *map(str, extra)])


def error_line(capsys) -> str:
    """The one line a command printed on stderr, without the prefix and the --debug hint."""
    line = one_line(capsys)
    assert line.startswith(("python -m lit_mrl ", "python -m data_prep."))
    return line.split(": error: ", 1)[1].split(" (traceback: ")[0]


def test_probe_ignores_a_part_the_index_does_not_list(tmp_path, capsys):
    root = toy_store(tmp_path / "emb")
    stray = root / "train-000009.npz"  # the test items, dropped in as training data
    stray.write_bytes((root / "test-000000.npz").read_bytes())
    warning = f"{stray}: not listed in {root / 'index.json'}, ignored"
    with pytest.warns(UserWarning, match="not listed in") as caught:
        assert probe(root, tmp_path / "out") == 0
    assert warning in [str(w.message) for w in caught]
    results = json.loads((tmp_path / "out" / "results.json").read_text())
    assert results["num_samples"]["train"] == 16  # not 32


def short_embeddings(split, arrays):
    if split == "train":
        arrays["embeddings"] = arrays["embeddings"][:10]  # 6 of 16 rows gone


def nan_embeddings(split, arrays):
    if split == "valid":
        arrays["embeddings"][[1, 4, 7]] = np.nan


def inf_labels(split, arrays):
    if split == "test":
        arrays["labels"][2, 0] = np.inf


def wide_embeddings(split, arrays):
    arrays["embeddings"] = np.hstack([arrays["embeddings"], arrays["embeddings"][:, :1]])


def narrow_labels(split, arrays):
    arrays["labels"] = arrays["labels"][:, :2]


def class_out_of_range(split, arrays):
    if split == "train":
        arrays["labels"][5] = 7


@pytest.mark.parametrize(
    ("task", "change", "part", "message"),
    [
        ("multiclass", short_embeddings, "train",
         "arrays disagree in length (index.json 16, keys 16, embeddings 10, labels 16)"),
        ("multiclass", nan_embeddings, "valid", "embeddings of 3 of 16 rows hold NaN or Inf"),
        ("multilabel", inf_labels, "test", "labels of 1 of 16 rows hold NaN or Inf"),
        ("multiclass", wide_embeddings, "train",
         "embeddings are (16, 5) float32, not (N, 4) floats (embed_dim 4)"),
        ("multilabel", narrow_labels, "train",
         "labels are (16, 2) float32, not (N, 3) numbers (multilabel)"),
        ("multiclass", class_out_of_range, "train",
         "labels of 1 of 16 rows are not a class index in [0, 3)"),
    ],
)  # fmt: skip
def test_probe_refuses_a_part_that_does_not_fit_before_training(
    tmp_path, capsys, task, change, part, message
):
    def edit(split, arrays):
        arrays["embeddings"] = np.asarray(arrays["embeddings"], dtype=np.float32)
        arrays["labels"] = np.array(arrays["labels"])
        change(split, arrays)

    root = toy_store(tmp_path / "emb", task, change=edit)
    assert probe(root, tmp_path / "out") == 2
    assert error_line(capsys) == f"{root / part}-000000.npz: {message}"
    assert not (tmp_path / "out").exists()


def test_probe_refuses_a_listed_part_that_changed_or_is_missing(tmp_path, capsys):
    root = toy_store(tmp_path / "emb")
    valid = root / "valid-000000.npz"
    arrays = dict(np.load(valid))
    arrays["labels"] = arrays["labels"][::-1].copy()  # the same items, other labels
    np.savez(valid, **arrays)
    assert probe(root, tmp_path / "out") == 2
    assert error_line(capsys) == (
        f"{valid}: differs from what index.json records (labels: another digest)"
    )
    valid.unlink()
    assert probe(root, tmp_path / "out") == 2
    assert error_line(capsys) == f"{valid}: listed in {root / 'index.json'} but missing"


def test_a_version_1_store_is_refused_with_what_to_do(tmp_path, capsys):
    root = toy_store(tmp_path / "emb")
    index = json.loads((root / "index.json").read_text())
    index["format_version"] = 1
    for split in index["splits"].values():
        split["parts"] = [part["name"] for part in split["parts"]]
    (root / "index.json").write_text(json.dumps(index))
    assert probe(root, tmp_path / "out") == 2
    assert error_line(capsys) == (
        f"{root / 'index.json'}: format_version 1 lists its parts without digests: rerun the "
        "same `python -m lit_mrl embed` command to update it (nothing is embedded again)"
    )


@pytest.fixture
def six_tracks(tmp_path):
    """Six tracks in two hand-made shards (no labels)."""
    data = tmp_path / "data"
    data.mkdir()
    write_tar(data / "x-test-000000.tar", members(("a", 1), ("b", 2), ("c", 3)))
    write_tar(data / "x-test-000001.tar", members(("d", 4), ("e", 5), ("f", 6)))
    write_info(data, {"test": ["x-test-000000.tar", "x-test-000001.tar"]}, {"test": [3, 3]})
    return data


def embed(checkpoint, data, out, *extra):
    args = ["embed", "--checkpoint", checkpoint, "--input", data, "--out", out,
            "--num_workers", 0, "--trainer.accelerator", "cpu", *extra]  # fmt: skip
    return main(list(map(str, args)))


def test_a_resumed_embed_adopts_the_parts_a_killed_run_wrote_and_nothing_else(
    tiny_checkpoint, six_tracks, tmp_path, capsys, monkeypatch
):
    from lit_mrl.formats.embeddings import PartWriter, load_split, read_index

    out = tmp_path / "emb"
    flush = PartWriter.flush

    def killed_after_two_parts(self):
        if self.next_index == 2:
            raise KeyboardInterrupt  # as kill -9 would: nothing after this runs
        return flush(self)

    with monkeypatch.context() as patch:
        patch.setattr(PartWriter, "flush", killed_after_two_parts)
        assert embed(tiny_checkpoint, six_tracks, out, "--part_size", 2) == 130
    assert read_index(out).splits == {}  # the index lists nothing yet; the journal does
    assert sorted(p.name for p in out.glob("*.npz")) == ["test-000000.npz", "test-000001.npz"]
    stray = out / "test-000007.npz"  # not this run's: a copy under a part's name
    stray.write_bytes((out / "test-000000.npz").read_bytes())
    journal = out / "parts.jsonl"
    first = json.loads(journal.read_text().splitlines()[0])
    unrenamed = {**first, "name": "test-000002.npz"}  # killed between journal and rename
    with open(journal, "a") as file:
        file.write(json.dumps(unrenamed) + '\n{"split": "test", "na')  # and a line cut short
    capsys.readouterr()
    assert embed(tiny_checkpoint, six_tracks, out, "--part_size", 2) == 0
    assert "test: 4 tracks already embedded (skipped), 2 to embed" in capsys.readouterr().out
    index = read_index(out)
    assert [p.name for p in index.splits["test"].parts] == [
        "test-000000.npz", "test-000001.npz", "test-000008.npz"
    ]  # fmt: skip
    assert not list(out.glob("parts*.jsonl"))
    with pytest.warns(UserWarning, match="not listed in"):
        data = load_split(out, "test")
    assert sorted(data.keys) == ["a", "b", "c", "d", "e", "f"]


def test_embed_never_writes_a_non_finite_embedding(
    tiny_checkpoint, six_tracks, tmp_path, capsys, monkeypatch
):
    from lit_mrl.embed.extractor import TimelineEmbedder
    from lit_mrl.formats.embeddings import load_split

    encode, calls = TimelineEmbedder.encode, []

    def overflowing_on_track_c(self, windows):
        calls.append(len(windows))
        emb = encode(self, windows)
        return emb * np.inf if len(calls) == 3 else emb  # batch 3 = track c's window

    monkeypatch.setattr(TimelineEmbedder, "encode", overflowing_on_track_c)
    out = tmp_path / "emb"
    assert embed(tiny_checkpoint, six_tracks, out, "--batch_windows", 1) == 1
    (error,) = map(json.loads, (out / "errors.jsonl").read_text().splitlines())
    assert error == {"split": "test", "key": "c", "lost": 1,
                     "error": "non-finite embedding (NaN or Inf in 1 of 1 windows)"}  # fmt: skip
    assert sorted(load_split(out, "test").keys) == ["a", "b", "d", "e", "f"]
    assert "1 tracks failed" in capsys.readouterr().out


def test_embed_updates_a_version_1_store_without_embedding_again(
    tiny_checkpoint, six_tracks, tmp_path, capsys
):
    from lit_mrl.formats.embeddings import read_index

    out = tmp_path / "emb"
    assert embed(tiny_checkpoint, six_tracks, out) == 0
    current = json.loads((out / "index.json").read_text())
    old = {**current, "format_version": 1}
    old["splits"] = {"test": {"num_samples": 6, "parts": ["test-000000.npz"]}}
    (out / "index.json").write_text(json.dumps(old))
    capsys.readouterr()
    assert embed(tiny_checkpoint, six_tracks, out) == 0
    assert "test: 6 tracks already embedded (skipped), 0 to embed" in capsys.readouterr().out
    assert json.loads((out / "index.json").read_text()) == current
    assert read_index(out).splits["test"].num_samples == 6


# 4. report


def craft_results(folder, test, task_name="mine", model_name="model", task="multiclass"):
    """A results.json written with json alone (intervals: the same values)."""
    folder.mkdir(parents=True, exist_ok=True)
    result = {"format_version": 2, "task": task, "task_name": task_name,
              "model_name": model_name, "metric": "default", "class_names": ["a", "b"],
              "test": test, "test_low": test, "test_high": test}  # fmt: skip
    (folder / "results.json").write_text(json.dumps(result))  # NaN / Infinity as Python writes
    return folder / "results.json"


@pytest.mark.parametrize(
    ("test", "message"),
    [
        ({"accuracy": "0.9"}, "field test.accuracy is '0.9', not a number"),
        ({"accuracy": float("nan")}, "field test.accuracy is nan, not a finite number (undefined is null)"),
        ({"accuracy": 1e308}, "field test.accuracy is 1e+308, outside the metric's range (0 to 1)"),
        ({"accuracy": -0.1}, "field test.accuracy is -0.1, outside the metric's range (0 to 1)"),
        ({"r2": 1.5}, "field test.r2 is 1.5, outside the metric's range (to 1)"),
        ({"r2": -1e307}, "field test.r2 is -1e+307, too large to report"),
    ],
)  # fmt: skip
def test_report_refuses_a_metric_that_is_not_a_number_in_its_range(tmp_path, capsys, test, message):
    path = craft_results(tmp_path / "r", test, task="regression" if "r2" in test else "multiclass")
    assert main(["report", str(tmp_path / "r"), "--out", str(tmp_path / "report.md")]) == 2
    assert error_line(capsys) == f"{path}: {message}"
    assert not (tmp_path / "report.md").exists()


def test_report_names_with_pipes_and_newlines_keep_the_table_intact(tmp_path, capsys):
    import csv

    craft_results(tmp_path / "r", {"accuracy": 0.8}, "my|task\nv2", "a|b\\\nmodel")
    out, table = tmp_path / "report.md", tmp_path / "report.csv"
    assert main(["report", str(tmp_path / "r"), "--out", str(out), "--csv", str(table)]) == 0
    lines = out.read_text().splitlines()
    assert lines[2:5] == [
        "| task | metric | a\\|b\\\\ model |",
        "|---|---|---:|",
        "| my\\|task v2 | accuracy | 80.0 ± 0.0 |",
    ]
    rows = list(csv.reader(table.read_text().splitlines()))
    assert rows == [
        ["task", "metric", "a|b\\ model mean", "a|b\\ model low", "a|b\\ model high"],
        ["my|task v2", "accuracy", "80.00", "80.00", "80.00"],
    ]
    capsys.readouterr()


# 5. import_mule's config.json


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[" * 100_000 + "]" * 100_000, "nests too deeply to be a config.json"),
        ("[1, 2]", "is not a JSON object (it holds a list)"),
        (" " * (2 << 20) + "{}", "is 2,097,154 bytes, not a config.json (those are under 1,048,576 bytes)"),
        ('{"a": "\udcff"}', "is not JSON: 'utf-8' codec can't decode byte 0xed in position 7: invalid continuation byte"),
    ],
    ids=["deep", "list", "huge", "not-utf8"],
)  # fmt: skip
def test_import_mule_refuses_a_config_that_is_not_one_in_one_line(tmp_path, capsys, text, message):
    (tmp_path / "model.safetensors").write_bytes(b"not read: the config is checked first")
    config = tmp_path / "config.json"
    config.write_bytes(text.encode("utf-8", "surrogatepass"))
    out = tmp_path / "mule_encoder"
    assert main(["import_mule", str(tmp_path / "model.safetensors"), "--out", str(out)]) == 2
    assert error_line(capsys) == f"{config} {message}"
    assert not out.exists()


# 6. smaller messages


@pytest.mark.parametrize("rate", [0, -16000])
def test_an_info_json_without_a_positive_rate_names_the_field(tmp_path, capsys, rate):
    write_tar(tmp_path / "x-test-000000.tar", members(("a", 1)))
    write_info(tmp_path, {"test": ["x-test-000000.tar"]}, {"test": [1]})
    info = json.loads((tmp_path / "info.json").read_text())
    (tmp_path / "info.json").write_text(json.dumps({**info, "sample_rate": rate}))
    args = ["embed", "--checkpoint", str(tmp_path / "none.ckpt"), "--input", str(tmp_path),
            "--out", str(tmp_path / "emb")]  # fmt: skip
    assert main(args) == 2
    assert error_line(capsys) == (
        f"{tmp_path / 'info.json'} is not a valid dataset info file: field 'sample_rate' is "
        f"{rate}, not a positive rate in Hz"
    )


def test_a_sample_json_nested_too_deeply_is_a_broken_sample_not_a_crash(tmp_path):
    shard = tmp_path / "x-train-000000.tar"
    write_tar(shard, [("a.flac", wav_bytes(1)), ("a.json", b"[" * 100_000 + b"]" * 100_000)])
    with pytest.raises(ValueError, match=r"sample 'a' has invalid JSON \(maximum recursion"):
        list(iter_shard(shard))


def test_hear_gives_empty_results_for_zero_sounds(tiny_checkpoint):
    from lit_mrl import hear

    model = hear.load_model(str(tiny_checkpoint))
    emb, stamps = hear.get_timestamp_embeddings(torch.zeros(0, 5 * SR), model)
    assert (emb.shape, stamps.shape) == ((0, 5, 8), (0, 5))  # 5 s: five timestamps
    assert hear.get_scene_embeddings(torch.zeros(0, 5 * SR), model).shape == (0, 8)


def test_hear_refuses_non_finite_audio_and_clips_huge_audio(tiny_checkpoint):
    from lit_mrl import hear

    model = hear.load_model(str(tiny_checkpoint))
    audio = torch.from_numpy(np.random.default_rng(0).uniform(-1, 1, (2, SR)).astype(np.float32))
    bad = audio.clone()
    bad[1, 7] = torch.nan
    with pytest.raises(ValueError, match=r"^audio has NaN or Inf samples in 1 of 2 sounds$"):
        hear.get_scene_embeddings(bad, model)
    with pytest.warns(UserWarning, match=r"were clipped: HEAR audio is in \[-1, 1\]"):
        loud = hear.get_scene_embeddings(audio * 1e30, model)
    assert torch.isfinite(loud).all()
    torch.testing.assert_close(loud, hear.get_scene_embeddings(audio.sign(), model))


def test_hear_never_returns_non_finite_embeddings(tiny_checkpoint):
    from lit_mrl import hear

    model = hear.load_model(str(tiny_checkpoint))
    with torch.no_grad():
        next(model.audio_encoder.encoder.parameters()).fill_(torch.nan)
    with pytest.raises(
        ValueError, match=r"NaN/Inf embeddings for 2 of 2 sounds \(the first: sound 0\)"
    ):
        hear.get_scene_embeddings(torch.zeros(2, SR), model)
