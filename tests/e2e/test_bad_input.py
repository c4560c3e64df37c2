"""Bad input to lit_mrl's commands: one line naming the file or value, and nothing lost.

Data preparation has its own module (tests/prep/test_bad_input_prep.py) and crafted checkpoints
theirs (tests/models/test_checkpoints.py); this covers embed, fit, probe and report.
"""

import json
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest

from lit_mrl.cli import main
from lit_mrl.formats.embeddings import load_split, read_index
from lit_mrl.formats.info import read_info, shard_paths
from lit_mrl.formats.shard_writer import write_dataset

ROOT = Path(__file__).resolve().parents[2]
SR = 16000


def one_line(capsys) -> str:
    """The single line a command printed on stderr."""
    (line,) = capsys.readouterr().err.strip().splitlines()
    return line


def embed(checkpoint, source, out, *extra):
    args = ["embed", "--checkpoint", checkpoint, "--input", source, "--out", out, *extra]
    return main([*map(str, args), "--num_workers", "0", "--trainer.accelerator", "cpu"])


@pytest.fixture
def ten_tracks(tmp_path):
    """A split of 10 tracks in one shard."""
    rng = np.random.default_rng(0)
    clips = [
        (f"k{i}", 0.3 * rng.standard_normal(SR // 2).astype(np.float32), {}) for i in range(10)
    ]
    write_dataset(tmp_path / "ten", "ten", {"test": clips}, SR)
    return tmp_path / "ten"


def test_embed_refuses_a_folder_another_run_is_writing(
    tiny_checkpoint, ten_tracks, tmp_path, capsys
):
    out = tmp_path / "emb"
    out.mkdir()
    holder = (  # the first run, still at work (locks belong to a process: use another one)
        "import sys, time\nfrom lit_mrl.formats.files import lock_dir\n"
        f"with lock_dir({str(out)!r}, 'embed.r000', 'a test'):\n"
        "    print('locked', flush=True)\n    time.sleep(60)\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", holder], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "locked"
        assert embed(tiny_checkpoint, ten_tracks, out) == 2
    finally:
        proc.kill()
    assert "is in use" in one_line(capsys)
    assert not list(out.glob("*.npz"))  # nothing written twice


def test_embed_refuses_other_weights_then_starts_over_when_asked(
    tiny_checkpoint, ten_tracks, tmp_path, capsys
):
    out = tmp_path / "emb"
    assert embed(tiny_checkpoint, ten_tracks, out) == 0
    other = tmp_path / "other.ckpt"
    other.write_bytes(tiny_checkpoint.read_bytes() + b"\0")  # other bytes: another fingerprint
    capsys.readouterr()
    assert embed(other, ten_tracks, out) == 2
    assert "holds embeddings made with fingerprint=" in one_line(capsys)
    assert embed(other, ten_tracks, out, "--overwrite", "true") == 0
    assert read_index(out).settings["checkpoint"] == str(other.resolve())
    assert sorted(load_split(out, "test").keys) == [f"k{i}" for i in range(10)]


def test_embed_exits_1_when_every_track_failed(tiny_checkpoint, tmp_path, capsys):
    (tmp_path / "audio").mkdir()
    (tmp_path / "audio" / "a.wav").write_text("not audio")
    (tmp_path / "audio" / "b.mp3").write_bytes(b"")
    assert embed(tiny_checkpoint, tmp_path / "audio", tmp_path / "emb") == 1
    errors = (tmp_path / "emb" / "errors.jsonl").read_text().splitlines()
    assert len(errors) == 2
    assert "2 tracks failed" in capsys.readouterr().out


def test_a_truncated_shard_counts_every_track_it_lost(tiny_checkpoint, ten_tracks, tmp_path):
    (shard,) = shard_paths(ten_tracks, "test")
    data = Path(shard).read_bytes()
    Path(shard).write_bytes(data[: len(data) * 3 // 10])  # about 3 of 10 tracks survive
    assert embed(tiny_checkpoint, ten_tracks, tmp_path / "emb") == 1
    kept = load_split(tmp_path / "emb", "test").keys
    (error,) = map(json.loads, (tmp_path / "emb" / "errors.jsonl").read_text().splitlines())
    assert error["lost"] == 10 - len(kept)
    assert error["lost"] >= 6


@pytest.mark.parametrize(
    ("option", "value"), [("--hop_seconds", "0"), ("--batch_windows", "0"), ("--part_size", "-1")]
)
def test_embed_numeric_options_are_checked_when_parsed(tmp_path, capsys, option, value):
    with pytest.raises(SystemExit) as exit_info:
        main(["embed", "--input", str(tmp_path), "--out", str(tmp_path / "o"), option, value])
    assert exit_info.value.code == 2
    assert option.lstrip("-") in capsys.readouterr().err


def fit(shards, tmp_path, *extra):
    args = [
        "fit", "-c", "configs/pretrain/supervised.yaml", "-c", "tests/configs/tiny.yaml",
        f"--data.root={shards}", f"--trainer.default_root_dir={tmp_path}",
        "--trainer.logger=false", *extra,
    ]  # fmt: skip
    return main(args)


def test_fit_with_a_missing_data_root_is_one_line(tmp_path, capsys):
    assert fit(tmp_path / "nowhere", tmp_path) == 2
    line = one_line(capsys)
    assert "no dataset info at" in line
    assert "nowhere" in line


def test_fit_skips_a_truncated_shard_naming_it(tiny_shards, tmp_path):
    copy = tmp_path / "shards"
    copy.mkdir()
    for item in Path(tiny_shards).iterdir():
        (copy / item.name).write_bytes(item.read_bytes())
    first = Path(shard_paths(copy, "train")[0])
    first.write_bytes(first.read_bytes()[:20000])  # cut inside its third sample
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert fit(copy, tmp_path, "--trainer.max_epochs=2") == 0
    messages = [str(w.message) for w in caught if "broken shard" in str(w.message)]
    assert any(first.name in m and "samples lost" in m for m in messages), messages


def test_fit_skips_samples_at_another_rate_than_info_json(tmp_path):
    rng = np.random.default_rng(0)
    clips = [(f"k{i}", 0.3 * rng.standard_normal(SR).astype(np.float32), {"labels": ["a"]})
             for i in range(4)]  # fmt: skip
    write_dataset(tmp_path / "sh", "mixed", {"train": clips, "valid": clips[:2]}, SR,
                  task="multilabel", vocabulary=["a", "b"], max_samples=2)  # fmt: skip
    # one of the two training shards re-written at 22050 Hz behind info.json's back
    wrong = tmp_path / "wrong"
    write_dataset(wrong, "mixed", {"train": clips[:2]}, 22050, task="multilabel",
                  vocabulary=["a", "b"])  # fmt: skip
    target = shard_paths(tmp_path / "sh", "train")[0]
    Path(target).write_bytes(Path(shard_paths(wrong, "train")[0]).read_bytes())
    assert read_info(tmp_path / "sh").sample_rate == SR
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        code = fit(tmp_path / "sh", tmp_path, "--trainer.max_epochs=2", "--data.batch_size=1")
    assert code == 0  # trained on the good shard
    assert any("22050 Hz but info.json says 16000 Hz" in str(w.message) for w in caught)


def test_supervised_fit_takes_single_label_data_as_one_tag_per_clip(
    tiny_multiclass_shards, tmp_path
):
    assert fit(tiny_multiclass_shards, tmp_path, "--trainer.max_epochs=1") == 0


def test_supervised_fit_refuses_regression_data_naming_info_json(tmp_path, capsys):
    rng = np.random.default_rng(0)
    clips = [(f"k{i}", 0.3 * rng.standard_normal(SR).astype(np.float32), {"targets": [0.5]})
             for i in range(4)]  # fmt: skip
    write_dataset(tmp_path / "reg", "reg", {"train": clips, "valid": clips[:2]}, SR,
                  task="regression", vocabulary=["valence"])  # fmt: skip
    assert fit(tmp_path / "reg", tmp_path) == 2
    line = one_line(capsys)
    assert f"{tmp_path / 'reg'}/info.json: task is 'regression'" in line
