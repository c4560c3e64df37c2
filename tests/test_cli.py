import subprocess
import sys
from pathlib import Path

import pytest
import torch

from lit_mrl.cli import main, make_cli

ROOT = Path(__file__).resolve().parent.parent


def test_help_lists_every_command(capsys):
    main(["--help"])
    out = capsys.readouterr().out
    for command in ("fit", "validate", "test", "predict"):
        assert command in out


def test_unknown_command_fails_clearly():
    with pytest.raises(SystemExit, match="unknown command 'fitt'"):
        main(["fitt"])


def test_fit_end_to_end_through_python_m(tiny_shards, tmp_path, monkeypatch):
    """The real entry point, in a subprocess: checkpoint, config and an offline W&B run."""
    monkeypatch.setenv("WANDB_MODE", "offline")
    cmd = [
        sys.executable, "-m", "lit_mrl", "fit",
        "-c", "configs/trainer.yaml",
        "-c", "configs/pretrain/supervised.yaml",
        "-c", "tests/configs/tiny.yaml",
        f"--data.root={tiny_shards}",
        f"--trainer.default_root_dir={tmp_path}",
        f"--trainer.logger.init_args.save_dir={tmp_path}",
    ]  # fmt: skip
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    (last,) = tmp_path.glob("**/last.ckpt")
    ckpt = torch.load(last, map_location="cpu", weights_only=True)
    assert ckpt["global_step"] == 2
    assert ckpt["hyper_parameters"]["num_tags"] == 3  # filled in from info.json
    assert list(tmp_path.glob("**/config.yaml"))
    (run,) = tmp_path.glob("wandb/offline-run-*")
    assert list(run.glob("*.wandb"))


def test_num_tags_mismatch_names_both_values(tiny_shards):
    args = [
        "-c", "configs/pretrain/supervised.yaml",
        "-c", "tests/configs/tiny.yaml",
        f"--data.root={tiny_shards}",
        "--model.init_args.num_tags=7",
    ]  # fmt: skip
    with pytest.raises(ValueError, match=r"num_tags=7 .* 3 labels"):
        make_cli(args, run=False)


def test_sample_rate_mismatch_fails_fast(tiny_shards, tmp_path):
    args = [
        "fit",
        "-c", "configs/pretrain/supervised.yaml",
        "-c", "tests/configs/tiny.yaml",
        f"--data.root={tiny_shards}",
        "--model.init_args.sample_rate=22050",
        f"--trainer.default_root_dir={tmp_path}",
    ]  # fmt: skip
    with pytest.raises(ValueError, match=r"16000 Hz .* 22050 Hz"):
        main(args)


def test_resume_continues_step_optimizer_and_schedule(tiny_shards, tmp_path):
    common = [
        "-c", "configs/trainer.yaml",
        "-c", "configs/pretrain/contrastive.yaml",
        "-c", "tests/configs/tiny.yaml",
        f"--data.root={tiny_shards}",
        f"--trainer.default_root_dir={tmp_path}",
        "--trainer.logger=false",
    ]  # fmt: skip
    main(["fit", *common])
    last = tmp_path / "checkpoints" / "last.ckpt"  # configs/trainer.yaml's last state
    first = torch.load(last, weights_only=True)
    main(["fit", *common, "--trainer.max_epochs=2", f"--ckpt_path={last}"])
    resumed = torch.load(last, weights_only=True)
    assert first["global_step"] == 2
    assert resumed["global_step"] == 4
    assert resumed["lr_schedulers"][0]["last_epoch"] == 4
    adam_steps = {float(s["step"]) for s in resumed["optimizer_states"][0]["state"].values()}
    assert adam_steps == {4.0}
