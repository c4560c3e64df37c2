import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from data_prep import shard, verify
from lit_mrl.formats.info import read_info
from lit_mrl.formats.shards import decode_audio, iter_shard, sanitize_key

REPO = Path(__file__).resolve().parents[2]

# (relative path, sample rate, channels, seconds, soundfile subtype)
GOOD_FILES = [
    ("rock/a.wav", 44100, 2, 1.0, "PCM_16"),
    ("rock/b.flac", 22050, 1, 0.5, "PCM_16"),
    ("jazz/c.ogg", 44100, 2, 1.0, "VORBIS"),
    ("jazz/d.mp3", 22050, 1, 1.0, "MPEG_LAYER_III"),
    ("pop/e.aiff", 44100, 1, 0.2, "PCM_16"),
    ("pop/f.wav", 22050, 2, 1.5, "PCM_24"),
]
GOOD_KEYS = ["rock_a", "rock_b", "jazz_c", "jazz_d", "pop_e", "pop_f"]


def tone(sample_rate: int, channels: int, seconds: float, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(int(sample_rate * seconds)) / sample_rate
    mono = 0.3 * np.sin(2 * np.pi * (200 + 50 * seed) * t) + 0.01 * rng.standard_normal(len(t))
    return np.repeat(mono[:, None], channels, axis=1).astype(np.float32)


def make_good_files(root: Path) -> None:
    for seed, (name, sample_rate, channels, seconds, subtype) in enumerate(GOOD_FILES):
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        sf.write(path, tone(sample_rate, channels, seconds, seed), sample_rate, subtype=subtype)


def make_bad_files(root: Path) -> dict[str, str]:
    """The bad kinds; returns relative path -> a word its error reason must contain."""
    bad = root / "bad"
    bad.mkdir(parents=True)
    (bad / "corrupt.flac").write_bytes(b"fLaC" + np.random.default_rng(0).bytes(4000))
    (bad / "empty.wav").write_bytes(b"")
    sf.write(bad / "no_samples.wav", np.zeros(0, np.float32), 16000)
    (bad / "text.wav").write_text("not audio at all\n" * 50)
    nan = tone(16000, 1, 0.5)
    nan[100] = np.nan
    sf.write(bad / "nan.wav", nan, 16000, subtype="FLOAT")
    (bad / "notes.txt").write_text("liner notes")  # a folder scan skips it: no error
    return {
        "bad/corrupt.flac": "not decodable",
        "bad/empty.wav": "empty file",
        "bad/no_samples.wav": "zero-length",
        "bad/text.wav": "not audio (starts like a text file)",
        "bad/nan.wav": "NaN",
    }


def run_sharder(*args: object) -> int:
    return shard.main([str(arg) for arg in args])


def read_errors(out: Path, name: str = "errors.jsonl") -> dict[str, str]:
    lines = (out / name).read_text().splitlines()
    return {json.loads(line)["path"]: json.loads(line)["reason"] for line in lines}


def sharded_keys(out: Path) -> list[str]:
    report = verify.verify(out)
    assert report.problems == []
    return sorted(report.keys)


@pytest.fixture(scope="module")
def audio_dir(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("audio")
    make_good_files(root)
    return root


@pytest.fixture(scope="module")
def manifest(audio_dir) -> Path:
    rows = [{"path": name, "labels": name.split("/")[0]} for name, *_ in GOOD_FILES]
    for i, row in enumerate(rows):
        row["split"] = "valid" if i == 1 else "train"
    path = audio_dir / "tracks.jsonl"
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


def test_folder_input_shards_good_files_and_reports_each_bad_one(tmp_path):
    make_good_files(tmp_path / "in")
    expected_errors = make_bad_files(tmp_path / "in")
    out = tmp_path / "out"

    status = run_sharder(
        "--input", tmp_path / "in", "--out", out, "--labels_from_parent", "--workers", 0
    )

    assert status == 1
    assert sharded_keys(out) == sorted(GOOD_KEYS)
    errors = read_errors(out)
    assert sorted(errors) == sorted(str(tmp_path / "in" / name) for name in expected_errors)
    for name, word in expected_errors.items():
        assert word in errors[str(tmp_path / "in" / name)]
    info = read_info(out)
    assert (info.dataset, info.sample_rate, info.task) == ("out", 16000, "multilabel")
    assert info.vocabulary == ["bad", "jazz", "pop", "rock"]  # labels of every listed input


def test_samples_are_resampled_mono_with_metadata(tmp_path, audio_dir, manifest):
    out = tmp_path / "out"

    assert run_sharder("--manifest", manifest, "--out", out, "--workers", 0) == 0

    samples = {s["key"]: s for path in sorted(out.glob("*.tar")) for s in iter_shard(path)}
    assert sorted(samples) == sorted(GOOD_KEYS)
    for (name, _, _, seconds, _), key in zip(GOOD_FILES, GOOD_KEYS, strict=True):
        audio, sample_rate = decode_audio(samples[key]["flac"])
        meta = samples[key]["json"]
        assert sample_rate == meta["sample_rate"] == 16000
        assert audio.ndim == 1
        # mp3 decoders add up to a frame of padding
        assert meta["duration"] == pytest.approx(seconds, abs=0.06)
        assert meta["duration"] == len(audio) / 16000
        assert meta["source"] == name
        assert meta["labels"] == [name.split("/")[0]]
        assert meta["split"] == ("valid" if key == "rock_b" else "train")
    assert samples["pop_e"]["json"]["warnings"] == ["short"]
    assert read_info(out).splits["valid"].num_samples == 1


def test_manifest_errors_with_vocabulary_and_process_pool(tmp_path, audio_dir):
    rows = [
        {"path": str(audio_dir / "rock/a.wav"), "labels": ["rock"], "track_id": "t1"},
        {"path": "jazz/c.ogg", "labels": "jazz", "key": "custom.key"},
        {"path": "pop/f.wav", "labels": ["polka"]},
        {"path": "missing.wav", "labels": ["rock"]},
        {"path": "jazz/c.ogg", "labels": "jazz", "key": "custom.key"},
    ]
    manifest = audio_dir / "errors.jsonl"
    manifest.write_text("".join(json.dumps(row) + "\n" for row in rows))
    vocabulary = tmp_path / "vocab.txt"
    vocabulary.write_text("rock\njazz\n")
    out = tmp_path / "out"

    status = run_sharder(
        "--manifest", manifest, "--vocabulary", vocabulary, "--out", out, "--workers", 2
    )

    assert status == 1
    assert sharded_keys(out) == sorted([sanitize_key(rows[0]["path"]), "custom_key"])
    errors = read_errors(out)
    assert "unknown label 'polka'" in errors["pop/f.wav"]
    assert errors["missing.wav"] == "file not found"
    assert "duplicate entry" in errors["jazz/c.ogg"]
    info = read_info(out)
    assert info.vocabulary == ["rock", "jazz"]


def test_csv_manifest_and_max_seconds(tmp_path, audio_dir):
    manifest = audio_dir / "tracks.csv"
    manifest.write_text("path,split,labels,key\nrock/a.wav,test,rock;live,first\npop/f.wav,,pop,\n")
    out = tmp_path / "out"

    status = run_sharder("--manifest", manifest, "--out", out, "--workers", 0, "--max_seconds", 0.5)

    assert status == 0
    info = read_info(out)
    assert info.splits["test"].num_samples == info.splits["train"].num_samples == 1
    assert info.total_seconds == pytest.approx(1.0)
    meta = next(iter_shard(out / info.splits["test"].shards[0]))["json"]
    assert (meta["key"], meta["labels"]) == ("first", ["rock", "live"])


def test_duplicate_keys_are_a_usage_error_naming_both(tmp_path, audio_dir, capsys):
    manifest = tmp_path / "dup.jsonl"
    manifest.write_text(
        json.dumps({"path": str(audio_dir / "rock/a.wav")})
        + "\n"
        + json.dumps({"path": str(audio_dir / "pop/f.wav"), "key": str(audio_dir / "rock/a.wav")})
        + "\n"
    )

    status = run_sharder("--manifest", manifest, "--out", tmp_path / "out")

    assert status == 2
    message = capsys.readouterr().err
    assert f"{manifest}:1" in message
    assert f"{manifest}:2" in message
    assert "rock/a.wav" in message
    assert "pop/f.wav" in message
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("{broken", "invalid JSON"),
        ('{"split": "train"}', "missing 'path'"),
        ('{"path": "a.wav", "labels": 3}', "'labels'"),
    ],
)
def test_bad_manifest_line_is_a_usage_error_naming_the_line(tmp_path, capsys, line, message):
    manifest = tmp_path / "m.jsonl"
    manifest.write_text('{"path": "x.wav"}\n\n' + line + "\n")

    assert run_sharder("--manifest", manifest, "--out", tmp_path / "out") == 2
    assert f"{manifest}:3: {message}" in capsys.readouterr().err


def test_resume_after_crash_ends_with_the_clean_run_keys(tmp_path, audio_dir, manifest, capsys):
    common = ["--manifest", manifest, "--workers", 0, "--max_shard_samples", 2]
    assert run_sharder(*common, "--out", tmp_path / "clean") == 0
    out = tmp_path / "crashed"
    assert run_sharder(*common, "--out", out) == 0
    shards = sorted(out.glob("crashed-train-*.tar"))
    assert len(shards) >= 2
    # a kill -9 leaves the last shard as a partial .tmp and no info.json
    shards[-1].rename(shards[-1].with_name(shards[-1].name + ".tmp"))
    (out / "info.json").unlink()
    capsys.readouterr()

    assert run_sharder(*common, "--out", out) == 0

    assert "resuming: 5 inputs already in shards" in capsys.readouterr().out
    assert not list(out.glob("*.tmp"))
    assert sharded_keys(out) == sharded_keys(tmp_path / "clean") == sorted(GOOD_KEYS)
    assert run_sharder(*common, "--out", out) == 0  # a rerun of a finished run adds nothing
    assert sharded_keys(out) == sorted(GOOD_KEYS)


def test_rerun_with_another_sample_rate_is_refused(tmp_path, manifest, capsys):
    out = tmp_path / "out"
    assert run_sharder("--manifest", manifest, "--out", out, "--workers", 0) == 0

    assert run_sharder("--manifest", manifest, "--out", out, "--sample_rate", 22050) == 2
    assert "[16000] Hz but --sample_rate is 22050" in capsys.readouterr().err


def test_partitions_merge_to_the_clean_run_keys(tmp_path, manifest):
    common = ["--manifest", manifest, "--workers", 0, "--dataset", "cat"]
    assert run_sharder(*common, "--out", tmp_path / "clean") == 0
    out = tmp_path / "parts"
    for index in range(3):
        assert (
            run_sharder(*common, "--out", out, "--num_partitions", 3, "--partition_index", index)
            == 0
        )
        assert (out / f"info.p{index:03d}.json").is_file()
    assert list(out.glob("cat-train-p000-000000.tar"))

    assert shard.main(["merge_info", str(out), "--num_partitions", "3"]) == 0

    assert sharded_keys(out) == sharded_keys(tmp_path / "clean")
    assert read_info(out).total_seconds == pytest.approx(
        read_info(tmp_path / "clean").total_seconds
    )


def test_verify_detects_tampering(tmp_path, manifest, capsys):
    out = tmp_path / "out"
    assert (
        run_sharder("--manifest", manifest, "--out", out, "--workers", 0, "--max_shard_samples", 2)
        == 0
    )
    assert verify.main([str(out), "--keys", str(tmp_path / "keys.txt")]) == 0
    assert (tmp_path / "keys.txt").read_text().split() == sorted(GOOD_KEYS)
    pristine = (out / "info.json").read_text()

    info = json.loads(pristine)
    info["splits"]["train"]["num_samples"] += 1
    (out / "info.json").write_text(json.dumps(info))
    assert verify.main([str(out)]) == 1
    assert "samples, info.json says" in capsys.readouterr().out

    info = json.loads(pristine)
    info["vocabulary"].remove("jazz")
    (out / "info.json").write_text(json.dumps(info))
    assert verify.main([str(out)]) == 1
    assert "['jazz'] are not in the vocabulary" in capsys.readouterr().out

    (out / "info.json").write_text(pristine)
    shutil.copy(out / "out-train-000000.tar", out / "out-train-000009.tar")
    assert verify.main([str(out)]) == 1
    assert "out-train-000009.tar is on disk but not in info.json" in capsys.readouterr().out

    (out / "out-train-000009.tar").unlink()
    (out / "out-train-000000.tar").unlink()
    assert verify.main([str(out)]) == 1
    assert "out-train-000000.tar is in info.json but missing" in capsys.readouterr().out


@pytest.mark.slow
def test_kill_9_mid_run_then_rerun_matches_clean_run(tmp_path):
    root = tmp_path / "in"
    for i in range(40):
        path = root / f"g{i % 4}" / f"track.{i:03d}.flac"
        path.parent.mkdir(parents=True, exist_ok=True)
        sf.write(path, tone(44100, 2, 4.0, seed=i), 44100)

    def command(out: Path) -> list[str]:
        return [sys.executable, "-m", "data_prep.shard", "--input", str(root), "--out", str(out),
                "--labels_from_parent", "--workers", "2", "--max_shard_samples", "3"]  # fmt: skip

    out = tmp_path / "killed"
    process = subprocess.Popen(
        command(out), cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    deadline = time.monotonic() + 120
    while (
        len(list(out.glob("*.tar"))) < 4 and process.poll() is None and time.monotonic() < deadline
    ):
        time.sleep(0.05)
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    assert not (out / "info.json").exists(), "the run finished before it could be killed"

    rerun = subprocess.run(command(out), cwd=REPO, capture_output=True, text=True, check=False)
    clean = subprocess.run(command(tmp_path / "clean"), cwd=REPO, capture_output=True, check=False)

    assert (rerun.returncode, clean.returncode) == (0, 0)
    assert "resuming:" in rerun.stdout
    assert sharded_keys(out) == sharded_keys(tmp_path / "clean")
    assert len(sharded_keys(out)) == 40


def test_regression_targets_and_multiclass_label_count(tmp_path, audio_dir):
    vocabulary = tmp_path / "targets.txt"
    vocabulary.write_text("arousal\nvalence\n")
    manifest = audio_dir / "regression.jsonl"
    rows = [
        {"path": "rock/a.wav", "targets": [0.5, -0.25]},
        {"path": "pop/f.wav", "targets": [1.0]},
    ]
    manifest.write_text("".join(json.dumps(row) + "\n" for row in rows))
    common = ["--manifest", manifest, "--workers", 0, "--vocabulary", vocabulary]

    assert run_sharder(*common, "--task", "regression", "--out", tmp_path / "reg") == 1
    info = read_info(tmp_path / "reg")
    assert (info.task, info.vocabulary, info.splits["train"].num_samples) == (
        "regression",
        ["arousal", "valence"],
        1,
    )
    assert next(iter_shard(tmp_path / "reg" / info.splits["train"].shards[0]))["json"][
        "targets"
    ] == [0.5, -0.25]
    assert "needs 2 targets" in read_errors(tmp_path / "reg")["pop/f.wav"]
    assert sharded_keys(tmp_path / "reg") == ["rock_a"]

    assert run_sharder(*common, "--task", "multiclass", "--out", tmp_path / "mc") == 1
    assert "exactly one label, got 0" in read_errors(tmp_path / "mc")["rock/a.wav"]


def test_out_folder_inside_input_folder_is_not_read_as_input(tmp_path):
    make_good_files(tmp_path)
    command = ["--input", tmp_path, "--out", tmp_path / "shards", "--workers", 0]

    assert run_sharder(*command) == 0
    assert run_sharder(*command) == 0  # the shards and info.json are not inputs
    assert sharded_keys(tmp_path / "shards") == sorted(GOOD_KEYS)


def test_data_prep_imports_no_torch_and_only_light_lit_mrl_modules():
    modules = sorted(
        ".".join(path.relative_to(REPO).with_suffix("").parts)
        for path in (REPO / "data_prep").rglob("*.py")
        if path.stem != "__main__"
    )
    code = (
        "import importlib, json, sys\n"
        f"for name in {modules!r}: importlib.import_module(name.removesuffix('.__init__'))\n"
        "print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'lit_mrl', 'av'))))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True
    )

    imported = set(json.loads(result.stdout))
    assert {"data_prep.shard", "data_prep.verify", "data_prep.core.sharder",
            "data_prep.datasets.gtzan", "data_prep.gtzan"} <= set(modules)  # fmt: skip
    assert not any(name.split(".")[0] in ("torch", "av") for name in imported)  # av: lazily
    # only the torch-free formats package (and the shared error messages and Ctrl-C rule)
    assert all(
        name in ("lit_mrl", "lit_mrl.errors", "lit_mrl.signals", "lit_mrl.formats")
        or name.startswith("lit_mrl.formats.")
        for name in imported
    ), imported  # the shard format (audio, info.json, tars, file writing) and user errors
