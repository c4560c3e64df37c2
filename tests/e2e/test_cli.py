import subprocess
import sys
from pathlib import Path

import pytest
import torch

from lit_mrl.cli import LIGHTNING_COMMANDS, TOOL_COMMANDS, main
from lit_mrl.cli.lightning import make_cli

ROOT = Path(__file__).resolve().parents[2]


def test_help_lists_every_command(capsys):
    main(["--help"])
    out = capsys.readouterr().out
    for command in (*LIGHTNING_COMMANDS, *TOOL_COMMANDS):
        assert f"  {command} " in out


@pytest.mark.parametrize("command", [*LIGHTNING_COMMANDS, *TOOL_COMMANDS])
def test_every_command_answers_help(command, capsys):
    with pytest.raises(SystemExit) as stop:
        main([command, "--help"])
    assert stop.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: python -m lit_mrl")
    assert command in out.splitlines()[0]


def test_unknown_command_fails_clearly(capsys):
    assert main(["fitt"]) == 2
    assert "unknown command 'fitt'" in capsys.readouterr().err


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
    ]  # fmt: skip
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    run = tmp_path / "lit_mrl" / "version_0"  # one folder per run: checkpoints, config, CSV
    ckpt = torch.load(run / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    assert ckpt["global_step"] == 2
    assert ckpt["hyper_parameters"]["num_tags"] == 3  # filled in from info.json
    assert (run / "config.yaml").is_file()
    assert "val/loss" in (run / "metrics.csv").read_text()
    (wandb_run,) = tmp_path.glob("wandb/offline-run-*")
    assert list(wandb_run.glob("*.wandb"))
    noise = ("Tip:", "wandb: ", "Total Flops", "LightningCLI's args parameter")
    assert not [line for line in proc.stderr.splitlines() + proc.stdout.splitlines()
                if any(word in line for word in noise) and "WARNING" not in line]  # fmt: skip


def test_num_tags_mismatch_names_both_values(tiny_shards):
    args = [
        "-c", "configs/pretrain/supervised.yaml",
        "-c", "tests/configs/tiny.yaml",
        f"--data.root={tiny_shards}",
        "--model.init_args.num_tags=7",
    ]  # fmt: skip
    with pytest.raises(ValueError, match=r"num_tags=7 .* 3 labels"):
        make_cli(args, run=False)


def test_sample_rate_mismatch_fails_fast_in_one_line(tiny_shards, tmp_path, capsys):
    args = [
        "fit",
        "-c", "configs/pretrain/supervised.yaml",
        "-c", "tests/configs/tiny.yaml",
        f"--data.root={tiny_shards}",
        "--model.init_args.sample_rate=22050",
        f"--trainer.default_root_dir={tmp_path}",
    ]  # fmt: skip
    assert main(args) == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert "22050" in line
    assert "16000" in line
    assert "info.json: sample_rate" in line  # checked from the config, before anything is built


def test_abbreviated_options_are_errors(tiny_shards, capsys):
    args = ["fit", "-c", "configs/pretrain/supervised.yaml", f"--data.root={tiny_shards}"]
    with pytest.raises(SystemExit):
        main([*args, "--trainer.max_epoch=1"])
    assert "max_epoch" in capsys.readouterr().err


def test_version_and_fast_help():
    proc = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "lit_mrl", "--version"],
        cwd=ROOT, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert proc.stdout.startswith("lit_mrl ")
    imported = {line.split("|")[-1].strip() for line in proc.stderr.splitlines()}
    assert "torch" not in imported
    assert "lightning" not in imported


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
