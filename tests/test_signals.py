"""Ctrl-C stops a run at its next safe point; pressed during an audio decode it is not lost."""

import io
import json
import os
import signal
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

import lit_mrl.embed.sources as sources
from lit_mrl.cli import main
from lit_mrl.signals import DeferredInterrupt

ROOT = Path(__file__).resolve().parents[1]
SR = 16000


class CtrlCWhileReading(io.BytesIO):
    """In-memory audio whose ``presses``-th read (soundfile's cffi callback) sends SIGINT."""

    reads = 0
    press_at = 1

    def readinto(self, buffer):
        CtrlCWhileReading.reads += 1
        if CtrlCWhileReading.reads == CtrlCWhileReading.press_at:
            os.kill(os.getpid(), signal.SIGINT)
        return super().readinto(buffer)


@pytest.fixture
def flac_bytes():
    tone = np.sin(2 * np.pi * 440 * np.arange(SR) / SR).astype(np.float32)
    buffer = io.BytesIO()
    sf.write(buffer, tone, SR, format="FLAC")
    return buffer.getvalue(), tone


def test_ctrl_c_inside_a_decode_leaves_the_decode_whole_and_is_raised_at_the_check(flac_bytes):
    data, tone = flac_bytes
    CtrlCWhileReading.reads, CtrlCWhileReading.press_at = 0, 2
    with DeferredInterrupt() as ctrl_c:
        decoded, rate = sf.read(CtrlCWhileReading(data), dtype="float32")
        assert CtrlCWhileReading.reads >= 2  # the press happened inside the decode
        assert rate == SR
        np.testing.assert_allclose(decoded, tone, atol=1e-4)  # FLAC is 16-bit here
        with pytest.raises(KeyboardInterrupt):
            ctrl_c.check()
        ctrl_c.check()  # once per press
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_a_second_ctrl_c_stops_at_once():
    with DeferredInterrupt() as ctrl_c:
        os.kill(os.getpid(), signal.SIGINT)
        assert ctrl_c.requested
        with pytest.raises(KeyboardInterrupt):  # os.kill runs the handler before returning
            os.kill(os.getpid(), signal.SIGINT)


def test_a_handler_someone_else_set_is_left_alone():
    def theirs(signum, frame):
        pass

    previous = signal.signal(signal.SIGINT, theirs)
    try:
        with DeferredInterrupt():
            assert signal.getsignal(signal.SIGINT) is theirs
        assert signal.getsignal(signal.SIGINT) is theirs
    finally:
        signal.signal(signal.SIGINT, previous)


def test_ctrl_c_while_embed_decodes_a_shard_exits_130_reports_nothing_corrupt_and_resumes(
    tiny_shards, tiny_checkpoint, tmp_path, monkeypatch, capsys
):
    def pressing(source):  # the member's bytes, read through soundfile's callbacks
        with real_open_audio(source) as raw:
            return CtrlCWhileReading(raw.read())

    real_open_audio = sources.open_audio
    monkeypatch.setattr(sources, "open_audio", pressing)
    CtrlCWhileReading.reads, CtrlCWhileReading.press_at = 0, 7
    args = ["embed", "--checkpoint", str(tiny_checkpoint), "--input", str(tiny_shards),
            "--num_workers", "0", "--part_size", "3", "--trainer.accelerator", "cpu",
            "--out", str(tmp_path / "emb")]  # fmt: skip
    assert main(args) == 130
    assert CtrlCWhileReading.reads >= 7
    assert "interrupted" in capsys.readouterr().err
    errors = [json.loads(line) for line in (tmp_path / "emb/errors.jsonl").read_text().splitlines()]
    assert errors == []  # before: the interrupted track was reported undecodable
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    assert main(args) == 0  # the rerun finishes the catalog
    index = json.loads((tmp_path / "emb/index.json").read_text())
    assert {name: s["num_samples"] for name, s in index["splits"].items()} == {
        "train": 16,
        "valid": 8,
        "test": 8,
    }
    parts = [part for s in index["splits"].values() for part in s["parts"]]
    assert sum(part["num_samples"] for part in parts) == 32


def test_ctrl_c_while_fit_decodes_a_crop_stops_after_the_batch_with_last_ckpt(
    tiny_shards, tmp_path, monkeypatch, capsys
):
    import lit_mrl.data.crops as crops

    def pressing(source):
        with real_open_audio(source) as raw:
            return CtrlCWhileReading(raw.read())

    real_open_audio = crops.open_audio
    monkeypatch.setattr(crops, "open_audio", pressing)
    CtrlCWhileReading.reads, CtrlCWhileReading.press_at = 0, 40  # inside the first epochs
    args = ["fit", "-c", str(ROOT / "configs/pretrain/supervised.yaml"),
            "-c", str(ROOT / "tests/configs/tiny.yaml"), "--trainer.logger=false",
            f"--data.root={tiny_shards}", f"--trainer.default_root_dir={tmp_path}",
            "--trainer.max_epochs=1000", "--trainer.limit_val_batches=0",
            "--trainer.enable_checkpointing=true"]  # fmt: skip
    assert main(args) == 130
    assert CtrlCWhileReading.reads >= 40
    err = capsys.readouterr().err
    assert "cannot decode" not in err  # the pressed-on crop was decoded, not skipped
    (last,) = tmp_path.glob("**/last.ckpt")
    assert f"resume with --ckpt_path {last}" in err
    assert torch.load(last, weights_only=True)["global_step"] > 0
    # before: Lightning's teardown put the deferring handler back, and it swallowed the
    # process's next Ctrl-C
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_ctrl_c_while_verify_decodes_a_shard_exits_130_and_reports_no_problem(
    tiny_shards, monkeypatch, capsys
):
    import types

    import data_prep.verify as verify

    monkeypatch.setattr(verify, "io", types.SimpleNamespace(BytesIO=CtrlCWhileReading))
    CtrlCWhileReading.reads, CtrlCWhileReading.press_at = 0, 7
    assert verify.main([str(tiny_shards)]) == 130
    assert CtrlCWhileReading.reads >= 7
    out, err = capsys.readouterr()
    assert "problem" not in out  # before: the pressed-on sample was reported undecodable
    assert "INCONSISTENT" not in out
    assert "interrupted" in err
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    CtrlCWhileReading.press_at = 0  # no more presses: the rerun checks the whole folder
    assert verify.main([str(tiny_shards)]) == 0
