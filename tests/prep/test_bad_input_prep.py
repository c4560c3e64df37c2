"""Bad inputs to data preparation: each is one line on stderr and a documented exit code."""

import errno
import io
import json
import os
import tarfile
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from data_prep import shard, verify
from data_prep.datasets import gtzan
from lit_mrl.formats.info import read_info
from lit_mrl.formats.shard_writer import write_dataset
from lit_mrl.formats.shards import iter_shard

SHARD = "python -m data_prep.shard: error: "
SR = 16000
NAMES = ["a", "b", "c", "d", "e"]


def write_tracks(folder: Path, names=NAMES) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for seed, name in enumerate(names):
        rng = np.random.default_rng(seed)
        sf.write(folder / f"{name}.wav", 0.2 * rng.standard_normal(1600).astype(np.float32), 16000)


def write_manifest(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


def rows(**overrides: dict) -> list[dict]:
    """One row per track, label "x"; ``overrides[name]`` replaces fields of that row."""
    return [{"path": f"{name}.wav", "labels": ["x"], **overrides.get(name, {})} for name in NAMES]


def run_shard(capsys, *args: object) -> tuple[int, list[str]]:
    """Exit code and the error lines on stderr (tqdm's progress lines left out)."""
    code = shard.main([str(arg) for arg in args])
    err = capsys.readouterr().err
    assert "Traceback" not in err
    return code, [line for line in err.splitlines() if ": error:" in line]


def sharded_keys(out: Path) -> list[str]:
    return sorted(s["key"] for path in sorted(out.glob("*.tar")) for s in iter_shard(path))


@pytest.fixture
def sharded(tmp_path, capsys) -> tuple[Path, Path]:
    """A manifest of five tracks, sharded into ``out``: ``(manifest, out)``."""
    write_tracks(tmp_path)
    manifest = write_manifest(tmp_path / "m.jsonl", rows())
    out = tmp_path / "out"
    assert run_shard(capsys, "--manifest", manifest, "--out", out, "--workers", 0) == (0, [])
    return manifest, out


# ---------------------------------------------------------------- resume: changed inputs


def test_changed_labels_refuse_to_resume(sharded, capsys):
    manifest, out = sharded
    write_manifest(manifest, rows(b={"labels": ["y"]}))

    code, lines = run_shard(capsys, "--manifest", manifest, "--out", out, "--workers", 0)

    assert code == 2
    assert lines == [
        f"{SHARD}the shards of 'out' in {out} do not match the inputs: 1 sharded sample "
        "(1 changed), e.g. 'b': labels differ: ['x'] in the shard, ['y'] now; rerun with "
        "--overwrite to delete this dataset's shards, info and errors there and shard from "
        "scratch (traceback: --debug or LIT_MRL_DEBUG=1)"
    ]


def test_changed_split_refuses_to_resume(sharded, capsys):
    manifest, out = sharded
    write_manifest(manifest, rows(c={"split": "valid"}))

    code, lines = run_shard(capsys, "--manifest", manifest, "--out", out, "--workers", 0)

    assert code == 2
    assert "e.g. 'c': split differs: 'train' in the shard, 'valid' now" in lines[0]


def test_modified_file_refuses_to_resume(sharded, capsys):
    manifest, out = sharded
    path = manifest.parent / "d.wav"
    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))

    code, lines = run_shard(capsys, "--manifest", manifest, "--out", out, "--workers", 0)

    assert code == 2
    assert "e.g. 'd': file changed: modified since it was sharded" in lines[0]


def test_removed_row_refuses_to_resume(sharded, capsys):
    manifest, out = sharded
    write_manifest(manifest, rows()[:4])

    code, lines = run_shard(capsys, "--manifest", manifest, "--out", out, "--workers", 0)

    assert code == 2
    assert "1 sharded sample (1 no longer among the inputs), e.g. 'e'" in lines[0]


def test_overwrite_shards_the_changed_inputs_from_scratch(sharded, capsys):
    manifest, out = sharded
    write_manifest(manifest, rows(b={"labels": ["y"]})[1:])

    code, lines = run_shard(capsys, "--manifest", manifest, "--out", out, "--workers", 0,
                            "--overwrite")  # fmt: skip

    assert (code, lines) == (0, [])
    assert sharded_keys(out) == ["b", "c", "d", "e"]
    assert read_info(out).vocabulary == ["x", "y"]


def test_new_rows_are_added_and_unchanged_ones_skipped(sharded, capsys):
    manifest, out = sharded
    write_tracks(manifest.parent, ["f"])
    write_manifest(manifest, [*rows(), {"path": "f.wav", "labels": ["x"]}])

    assert run_shard(capsys, "--manifest", manifest, "--out", out, "--workers", 0) == (0, [])

    assert sharded_keys(out) == ["a", "b", "c", "d", "e", "f"]


# ---------------------------------------------------------------- output folder


def test_out_holding_another_dataset_is_refused(sharded, capsys):
    manifest, out = sharded

    code, lines = run_shard(capsys, "--manifest", manifest, "--out", out, "--dataset", "other")

    assert code == 2
    assert lines[0].startswith(
        f"{SHARD}{out} holds dataset 'out' (info.json), not 'other': one dataset per folder"
    )


def test_out_holding_another_datasets_shards_is_refused(sharded, capsys):
    manifest, out = sharded
    (out / "info.json").unlink()

    code, lines = run_shard(capsys, "--manifest", manifest, "--out", out, "--dataset", "new")

    assert code == 2
    assert f"{out} holds dataset 'out' (out-train-000000.tar), not 'new'" in lines[0]


def test_out_of_disk_space_exits_3_and_a_rerun_completes(tmp_path, capsys, monkeypatch):
    write_tracks(tmp_path)
    manifest = write_manifest(tmp_path / "m.jsonl", rows())
    common = ["--manifest", manifest, "--workers", 0, "--max_shard_samples", 2]
    assert run_shard(capsys, *common, "--out", tmp_path / "clean")[0] == 0
    addfile, calls = tarfile.TarFile.addfile, []

    def full_disk(self, info, fileobj=None):
        calls.append(info.name)
        if len(calls) == 7:  # the 4th sample, in the second shard
            raise OSError(errno.ENOSPC, "No space left on device")
        return addfile(self, info, fileobj)

    monkeypatch.setattr(tarfile.TarFile, "addfile", full_disk)
    out = tmp_path / "out"

    code, lines = run_shard(capsys, *common, "--out", out)

    assert code == 3
    assert lines == [
        f"{SHARD}out of disk space ([Errno 28] No space left on device); free space and rerun "
        "the same command to resume"
    ]
    assert not list(out.glob("*.tmp"))
    assert len(list(out.glob("*.tar"))) == 1
    monkeypatch.setattr(tarfile.TarFile, "addfile", addfile)
    assert run_shard(capsys, *common, "--out", out) == (0, [])
    assert sharded_keys(out) == sharded_keys(tmp_path / "clean") == NAMES


# ---------------------------------------------------------------- inputs


def test_unknown_jsonl_key_names_the_near_miss(tmp_path, capsys):
    write_tracks(tmp_path, ["a"])
    manifest = write_manifest(tmp_path / "m.jsonl", [{"path": "a.wav"}, {"path": "a.wav", "target": [1.0]}])  # fmt: skip

    code, lines = run_shard(capsys, "--manifest", manifest, "--out", tmp_path / "out")

    assert code == 2
    assert lines[0].startswith(
        f"{SHARD}{manifest}:2: unknown key 'target' (did you mean 'targets'?); known: path, "
    )


def test_unknown_csv_column_names_the_near_miss(tmp_path, capsys):
    manifest = tmp_path / "m.csv"
    manifest.write_text("path,label\na.wav,rock\n")

    code, lines = run_shard(capsys, "--manifest", manifest, "--out", tmp_path / "out")

    assert code == 2
    assert f"{manifest}:1: unknown column 'label' (did you mean 'labels'?)" in lines[0]


def test_folder_without_audio_is_a_usage_error(tmp_path, capsys):
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "notes.txt").write_text("liner notes")

    code, lines = run_shard(capsys, "--input", tmp_path / "in", "--out", tmp_path / "out")

    assert code == 2
    assert lines[0].startswith(f"{SHARD}no audio files in --input {tmp_path / 'in'} (1 other")
    assert not (tmp_path / "out").exists()


def test_missing_manifest_is_one_line(tmp_path, capsys):
    code, lines = run_shard(capsys, "--manifest", tmp_path / "no.jsonl", "--out", tmp_path / "o")

    assert code == 2
    assert lines == [
        f"{SHARD}manifest {tmp_path / 'no.jsonl'} does not exist "
        "(traceback: --debug or LIT_MRL_DEBUG=1)"
    ]


@pytest.mark.parametrize(
    ("flag", "value", "message"),
    [
        ("--workers", "-1", "argument --workers: must be at least 0, got -1"),
        ("--max_seconds", "-2", "argument --max_seconds: must be positive, got -2"),
        ("--max_shard_mb", "0", "argument --max_shard_mb: must be positive, got 0"),
        ("--sample_rate", "16k", "argument --sample_rate: expected an integer, got '16k'"),
    ],
)
def test_bad_numbers_are_parse_errors_naming_the_option(tmp_path, capsys, flag, value, message):
    with pytest.raises(SystemExit) as caught:
        shard.main(["--input", str(tmp_path), "--out", str(tmp_path / "o"), flag, value])

    assert caught.value.code == 2
    assert (
        capsys.readouterr().err.splitlines()[-1] == f"python -m data_prep.shard: error: {message}"
    )


def test_adapter_option_checked_and_help_lists_exit_codes(tmp_path, capsys):
    with pytest.raises(SystemExit) as caught:
        gtzan.main(["--help"])
    assert caught.value.code == 0
    assert "3    out of disk space" in capsys.readouterr().out

    with pytest.raises(SystemExit):
        gtzan.main(["--root", str(tmp_path), "--out", str(tmp_path), "--workers", "x"])
    assert "argument --workers: expected an integer, got 'x'" in capsys.readouterr().err


def test_adapter_metadata_error_is_one_line(tmp_path, capsys):
    (tmp_path / "t.txt").write_text("blues/blues.00000.wav\n")

    code = gtzan.main(["--root", str(tmp_path), "--out", str(tmp_path / "o"),
                       *(f"--{s}_split={tmp_path / 't.txt'}" for s in ("train", "valid", "test"))])  # fmt: skip

    assert code == 2
    assert capsys.readouterr().err.splitlines() == [
        f"python -m data_prep.datasets.gtzan: error: {tmp_path}: no genres/<genre>/ folders (expected "
        "genres/blues/blues.00000.au or .wav) (traceback: --debug or LIT_MRL_DEBUG=1)"
    ]


# ---------------------------------------------------------------- verify


@pytest.fixture
def tiny(tmp_path) -> Path:
    """A valid two-sample dataset ``tiny`` written with the format's own writer."""
    audio = np.zeros(800, np.float32)
    write_dataset(tmp_path / "tiny", "tiny", {"train": [("k0", audio, {}), ("k1", audio, {})]}, 16000)  # fmt: skip
    return tmp_path / "tiny"


def add_members(shard_path: Path, *names: str) -> None:
    with tarfile.open(shard_path, "a") as tar:
        for name in names:
            data = b"{}" if name.endswith(".json") else b"\0"
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))


def run_verify(capsys, root: Path) -> tuple[int, list[str]]:
    code = verify.main([str(root)])
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err
    return code, [line for line in captured.out.splitlines() if line.startswith("problem:")]


@pytest.mark.parametrize(
    ("member", "problem"),
    [
        ("../evil.flac", "unsafe name (keys are [A-Za-z0-9_-]+: no folders, no '..', not absolute)"),
        ("/abs/x.json", "unsafe name (keys are [A-Za-z0-9_-]+: no folders, no '..', not absolute)"),
        ("k0.pickle", "unknown extension .pickle (only .flac and .json)"),
    ],
)  # fmt: skip
def test_verify_rejects_unsafe_and_unknown_members(tiny, capsys, member, problem):
    add_members(tiny / "tiny-train-000000.tar", member)

    code, problems = run_verify(capsys, tiny)

    assert code == 1
    assert problems == [f"problem: tiny-train-000000.tar: member {member!r}: {problem}"]


def test_verify_rejects_an_unlisted_foreign_shard(tiny, capsys):
    (tiny / "other.tar").write_bytes((tiny / "tiny-train-000000.tar").read_bytes())

    assert run_verify(capsys, tiny) == (1, ["problem: other.tar is on disk but not in info.json"])


def test_verify_rejects_a_listed_but_missing_shard(tiny, capsys):
    (tiny / "tiny-train-000000.tar").unlink()

    code, problems = run_verify(capsys, tiny)

    assert code == 1
    assert "problem: tiny-train-000000.tar is in info.json but missing on disk" in problems


def test_verify_of_a_folder_without_info_is_a_usage_error(tmp_path, capsys):
    assert verify.main([str(tmp_path)]) == 2
    assert capsys.readouterr().err.startswith(
        f"python -m data_prep.verify: error: no dataset info at {tmp_path / 'info.json'}"
    )


def flac_claiming(samples_claimed: int | None) -> bytes:
    """A 1 s FLAC whose STREAMINFO total-samples field (36 bits at byte 18) is rewritten."""
    buffer = io.BytesIO()
    sf.write(buffer, np.zeros(SR, dtype=np.float32), SR, format="FLAC", subtype="PCM_16")
    data = bytearray(buffer.getvalue())
    if samples_claimed is not None:
        fields = int.from_bytes(data[18:26], "big")
        fields = fields >> 36 << 36 | samples_claimed
        data[18:26] = fields.to_bytes(8, "big")
    return bytes(data)


@pytest.mark.parametrize(
    ("claimed", "problem"),
    [
        (0, "FLAC header claims 0 samples (zero-length or unknown length)"),
        (2**36 - 1, "FLAC header claims 68719476735 samples, decoding fails after 0 "
                    "(Internal psf_fseek() failed.)"),
        (None, None),
    ],
    ids=["zero", "huge", "honest"],
)  # fmt: skip
def test_verify_names_a_flac_header_that_lies_about_its_length(tmp_path, capsys, claimed, problem):
    meta = {"key": "a", "track_id": "a", "split": "test", "duration": 1.0, "labels": []}
    shard = tmp_path / "x-test-000000.tar"
    with tarfile.open(shard, "w", format=tarfile.USTAR_FORMAT) as tar:
        for name, data in (
            ("a.flac", flac_claiming(claimed)),
            ("a.json", json.dumps(meta).encode()),
        ):
            member = tarfile.TarInfo(name)
            member.size = len(data)
            tar.addfile(member, io.BytesIO(data))
    splits = {
        "test": {"num_samples": 1, "seconds": 1.0, "shards": [shard.name], "shard_num_samples": [1]}
    }
    info = {"format_version": 1, "dataset": "x", "sample_rate": SR, "task": "none",
            "vocabulary": [], "total_seconds": 1.0, "splits": splits}  # fmt: skip
    (tmp_path / "info.json").write_text(json.dumps(info))
    code = verify.main([str(tmp_path)])
    out = capsys.readouterr().out
    problems = [line for line in out.splitlines() if line.startswith("problem:")]
    if problem is None:
        assert (code, problems) == (0, [])
    else:
        assert code == 1
        assert problems[0] == f"problem: {shard.name}: a: {problem}"
