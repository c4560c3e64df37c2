"""The commands' spellings: snake_case flags, the kebab-case ones for one release, the old modules."""

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from data_prep import __main__ as dispatcher
from data_prep import gtzan as old_gtzan
from data_prep import shard
from data_prep.core.options import ShardOptions
from data_prep.core.rows import InputRow
from data_prep.core.sharder import shard_rows
from data_prep.datasets import ADAPTERS
from lit_mrl.errors import UsageError
from lit_mrl.formats.info import read_info

REPO = Path(__file__).resolve().parents[2]


def write_tracks(folder: Path, names=("a", "b")) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for seed, name in enumerate(names):
        audio = 0.2 * np.random.default_rng(seed).standard_normal(1600)
        sf.write(folder / f"{name}.wav", audio.astype(np.float32), 16000)
    return folder


def test_kebab_flags_still_work_with_one_note_each(tmp_path, capsys):
    folder = write_tracks(tmp_path / "in")
    args = ["--input", str(folder), "--out", str(tmp_path / "out"), "--workers", "0"]

    code = shard.main(
        [*args, "--sample-rate=22050", "--max-seconds", "0.05", "--max-seconds", "0.05"]
    )

    assert code == 0
    err = capsys.readouterr().err.splitlines()
    notes = [line for line in err if ": note: " in line]
    assert notes == [
        "python -m data_prep.shard: note: --sample-rate is deprecated, use --sample_rate",
        "python -m data_prep.shard: note: --max-seconds is deprecated, use --max_seconds",
    ]
    assert read_info(tmp_path / "out").sample_rate == 22050


def test_help_lists_only_the_snake_case_flags(capsys):
    with pytest.raises(SystemExit):
        shard.main(["--help"])
    help_text = capsys.readouterr().out
    assert "--sample_rate" in help_text
    assert "--max_shard_mb" in help_text
    assert "--sample-rate HZ" not in help_text


def test_an_abbreviated_flag_is_an_error(tmp_path, capsys):
    with pytest.raises(SystemExit) as caught:
        shard.main(["--input", str(tmp_path), "--out", str(tmp_path / "o"), "--sample", "8000"])
    assert caught.value.code == 2
    assert "unrecognized arguments: --sample" in capsys.readouterr().err


def test_a_required_adapter_flag_counts_in_its_old_spelling(tmp_path, capsys):
    (tmp_path / "t.txt").write_text("blues/blues.00000.wav\n")
    splits = [f"--{split}-split={tmp_path / 't.txt'}" for split in ("train", "valid", "test")]

    code = old_gtzan.main(["--root", str(tmp_path), "--out", str(tmp_path / "o"), *splits])

    assert code == 2  # the metadata error, not a missing --train_split
    err = capsys.readouterr().err.splitlines()
    assert err[0] == (
        "python -m data_prep.gtzan is deprecated: use python -m data_prep.datasets.gtzan "
        "(same flags); the old name goes in the next release"
    )
    assert "--train-split is deprecated, use --train_split" in err[1]
    assert err[-1].startswith("python -m data_prep.datasets.gtzan: error: ")
    assert "no genres/<genre>/ folders" in err[-1]


def test_old_module_names_run_as_scripts():
    result = subprocess.run(
        [sys.executable, "-m", "data_prep.mtat", "--help"],
        cwd=REPO, capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert result.returncode == 0
    assert "usage: python -m data_prep.datasets.mtat" in result.stdout
    assert "python -m data_prep.mtat is deprecated" in result.stderr


def test_the_dispatcher_lists_and_runs_commands(tmp_path, capsys):
    assert dispatcher.main([]) == 0
    listing = capsys.readouterr().out
    for command in ("shard", "verify", *ADAPTERS):
        assert f"  {command} " in listing
    folder = write_tracks(tmp_path / "in")
    assert dispatcher.main(["shard", "--input", str(folder), "--out", str(tmp_path / "o"),
                            "--workers", "0"]) == 0  # fmt: skip
    assert dispatcher.main(["verify", str(tmp_path / "o")]) == 0
    capsys.readouterr()
    assert dispatcher.main(["nope"]) == 2
    assert "unknown command 'nope'" in capsys.readouterr().err


def test_shard_rows_takes_typed_rows_and_options(tmp_path, capsys):
    folder = write_tracks(tmp_path / "in")
    rows = [
        InputRow(folder / "a.wav", "train", "a", labels=["x"], meta={"take": 1}),
        InputRow(folder / "b.wav", "test", "b", labels=["y"]),
        InputRow(folder / "gone.wav", "train", "gone", labels=["x"]),
        InputRow(folder / "a.wav", "train", "c", error="its label field is broken"),
    ]
    options = ShardOptions(
        out=tmp_path / "out", task="multiclass", vocabulary=("x", "y"), workers=0
    )

    assert shard_rows(rows, options, origin="test") == 1

    info = read_info(tmp_path / "out")
    assert (info.task, info.vocabulary) == ("multiclass", ["x", "y"])
    assert {name: split.num_samples for name, split in info.splits.items()} == {
        "train": 1,
        "test": 1,
    }
    errors = (tmp_path / "out" / "errors.jsonl").read_text()
    assert "file not found" in errors
    assert "its label field is broken" in errors
    capsys.readouterr()


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"sample_rate": 0}, "sample_rate must be an integer of at least 1, got 0"),
        ({"max_seconds": float("nan")}, "max_seconds must be a positive number, got nan"),
        ({"task": "tagging"}, "task must be one of"),
        ({"num_partitions": 2, "partition_index": 2}, "partition_index must be less than"),
    ],
)
def test_shard_options_are_checked_when_made(tmp_path, fields, message):
    with pytest.raises(UsageError, match=message):
        ShardOptions(out=tmp_path, **fields)


def test_every_adapter_module_is_a_listed_command():
    helpers = {"__init__", "adapter", "metadata", "wds_tars"}
    modules = {path.stem for path in (REPO / "data_prep" / "datasets").glob("*.py")} - helpers
    assert sorted(ADAPTERS) == sorted(modules)


@pytest.mark.parametrize("name", ADAPTERS)
def test_every_adapter_has_help_with_the_exit_codes(name, capsys):
    with pytest.raises(SystemExit) as caught:
        dispatcher.main([name, "--help"])
    assert caught.value.code == 0
    text = capsys.readouterr().out
    assert f"usage: python -m data_prep.datasets.{name} " in text
    assert "3    out of disk space" in text
    assert "--sample_rate" in text
