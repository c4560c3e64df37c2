"""Files that rebuild objects (checkpoints, model YAMLs, --ckpt_path) cross one trust check.

Every crafted input is made here by hand (``torch.save``, YAML text), never with lit_mrl's
writers. A module whose import leaves a marker file is put on ``sys.path`` for the test:
the marker proves nothing a file names outside the allow-list is ever imported.
"""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

import lit_mrl.hear as hear
from lit_mrl.cli import main
from lit_mrl.formats.shard_writer import write_dataset
from lit_mrl.trust import UntrustedCheckpointError

ROOT = Path(__file__).resolve().parents[2]
SR = 16000
TINY_FIT = [
    "-c", str(ROOT / "configs/pretrain/supervised.yaml"),
    "-c", str(ROOT / "tests/configs/tiny.yaml"),
    "--trainer.logger=false",
]  # fmt: skip


def one_line(capsys) -> str:
    """The single line a command printed on stderr."""
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1, lines
    return lines[0]


@pytest.fixture
def evil(tmp_path, monkeypatch):
    """A module ``evil_module`` whose import creates ``marker``; returns the marker path."""
    marker = tmp_path / "imported"
    (tmp_path / "evil_module.py").write_text(
        f"open({str(marker)!r}, 'w').close()\n"
        "import torch\nclass Enc(torch.nn.Module):\n    embed_dim = 4\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    sys.modules.pop("evil_module", None)
    yield marker
    sys.modules.pop("evil_module", None)


@pytest.fixture
def clips(tmp_path):
    rng = np.random.default_rng(0)
    tracks = [
        (f"k{i}", 0.3 * rng.standard_normal(SR // 2).astype(np.float32), {}) for i in range(3)
    ]
    write_dataset(tmp_path / "clips", "clips", {"test": tracks}, SR)
    return tmp_path / "clips"


def crafted(tmp_path, source, name="crafted.ckpt", **hparams):
    ckpt = torch.load(source, weights_only=True)
    ckpt["hyper_parameters"].update(hparams)
    path = tmp_path / name
    torch.save(ckpt, path)
    return path


def embed(capsys, out, *source):
    args = [*source, "--input", str(out.parent / "clips"), "--out", str(out), "--num_workers", "0"]
    return main(["embed", *map(str, args)])


# --- class names: bare strings, class_path keys, every entry point ------------------------


@pytest.mark.parametrize(
    "encoder",
    ["evil_module.Enc", {"class_path": "evil_module.Enc"}],
    ids=["bare string", "class_path"],
)
def test_embed_model_file_naming_a_foreign_module_imports_nothing(
    evil, clips, tmp_path, capsys, encoder
):
    import yaml

    model = tmp_path / "model.yaml"
    model.write_text(yaml.safe_dump({"encoder": encoder}))
    assert embed(capsys, tmp_path / "e", "--model", model) == 2
    line = one_line(capsys)
    assert f"{model}: encoder" in line
    assert "'evil_module.Enc'" in line
    assert "a model file" in line  # not worded as a checkpoint's hyper_parameters
    assert not evil.exists()


@pytest.mark.parametrize(
    "field",
    [
        {"encoder": "evil_module.Enc"},
        {"encoder": {"class_path": "lit_mrl.models.SmallCNN", "init_args": {"widths": [4]}},
         "frontend": "evil_module.Enc"},
        {"optimizer": "evil_module.Enc"},
        {"optimizer": {"class_path": "evil_module.Enc", "init_args": {"lr": 0.1}}},
    ],
    ids=["bare encoder", "bare frontend", "bare optimizer", "optimizer class_path"],
)  # fmt: skip
def test_a_checkpoint_naming_a_foreign_module_is_refused_by_embed_and_hear(
    evil, tiny_checkpoint, clips, tmp_path, capsys, field
):
    path = crafted(tmp_path, tiny_checkpoint, **field)
    assert embed(capsys, tmp_path / "e", "--checkpoint", path) == 2
    line = one_line(capsys)
    assert str(path) in line
    assert "evil_module.Enc" in line
    assert "hyper_parameters." in line
    with pytest.raises(UntrustedCheckpointError, match=r"evil_module\.Enc"):
        hear.load_model(str(path))
    assert not evil.exists()


def test_a_training_config_for_random_init_is_checked_too(evil, clips, tmp_path, capsys):
    config = tmp_path / "train.yaml"
    config.write_text(
        "model:\n  class_path: lit_mrl.methods.SupervisedTaggingModule\n"
        "  init_args:\n    encoder: evil_module.Enc\n"
    )
    assert embed(capsys, tmp_path / "e", "--random_init", config) == 2
    assert "model.init_args.encoder names 'evil_module.Enc'" in one_line(capsys)
    assert not evil.exists()


@pytest.mark.parametrize(
    "encoder", ["evil_module.Enc", {"class_path": "evil_module.Enc", "init_args": {}}]
)
def test_fit_ckpt_path_is_checked_before_lightning_reads_it(
    evil, tiny_checkpoint, tiny_shards, tmp_path, capsys, encoder
):
    path = crafted(tmp_path, tiny_checkpoint, encoder=encoder)
    args = ["fit", *TINY_FIT, f"--data.root={tiny_shards}", f"--ckpt_path={path}",
            f"--trainer.default_root_dir={tmp_path}"]  # fmt: skip
    assert main(args) == 2
    line = one_line(capsys)
    assert str(path) in line
    assert "hyper_parameters.encoder" in line
    assert not evil.exists()


# --- model files the parser or the classes reject: one line each --------------------------


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("encoder:\n  class_path: lit_mrl.models.SmallCNN\n  init_args: {widhts: [4]}\n",
         "encoder.init_args.widhts is not an argument of SmallCNN (did you mean 'widths'?)"),
        ("encoder: lit_mrl.schedules.WarmupCosineLR\n",
         "encoder names 'lit_mrl.schedules.WarmupCosineLR', which is not a torch.nn.modules"),
        ("encoder: [unclosed\n", "not valid YAML"),
        ("encoder: !!python/object/apply:os.system ['true']\n", "not valid YAML"),
        ("encoder: {class_path: lit_mrl.models.LogMelStats}\n"
         "frontend: {class_path: lit_mrl.models.LogMelSpectrogram, init_args: {hop_length: 0}}\n",
         "hop_length must be a positive integer, got 0"),
        ("encoder: {class_path: lit_mrl.models.LogMelStats}\n"
         "frontend: {class_path: lit_mrl.models.LogMelSpectrogram, init_args: {n_fft: -1}}\n",
         "n_fft must be a positive integer, got -1"),
        ("encoder: {class_path: lit_mrl.models.LogMelStats}\n"
         "frontend: {class_path: lit_mrl.models.LogMelSpectrogram, init_args: {sample_rate: 0}}\n",
         "sample_rate must be a positive integer, got 0"),
        ("encoder: {class_path: torch.nn.Linear, init_args: {in_features: 10000000, "
         "out_features: 10000000}}\n", "cannot build the model it describes"),
    ],
    ids=["unknown key", "not a module", "invalid yaml", "python tag", "hop 0", "n_fft -1",
         "rate 0", "400 TB"],
)  # fmt: skip
def test_a_bad_model_file_is_one_line(clips, tmp_path, capsys, text, message):
    model = tmp_path / "model.yaml"
    model.write_text(text)
    assert embed(capsys, tmp_path / "e", "--model", model) == 2
    line = one_line(capsys)
    assert str(model) in line
    assert message in line


# --- checkpoints whose tensors do not fit --------------------------------------------------


def _reshaped(tiny_checkpoint, tmp_path):
    ckpt = torch.load(tiny_checkpoint, weights_only=True)
    name = next(n for n in ckpt["state_dict"] if n.endswith("weight"))
    ckpt["state_dict"][name] = torch.zeros(3, 1)
    path = tmp_path / "shape.ckpt"
    torch.save(ckpt, path)
    return path, name


def test_a_checkpoint_with_a_wrong_tensor_shape_is_one_line(
    tiny_checkpoint, tiny_shards, clips, tmp_path, capsys
):
    path, name = _reshaped(tiny_checkpoint, tmp_path)
    assert embed(capsys, tmp_path / "e", "--checkpoint", path) == 2
    assert f"{path}: state_dict.{name} has shape (3, 1)" in one_line(capsys)
    args = ["fit", *TINY_FIT, f"--data.root={tiny_shards}", f"--ckpt_path={path}",
            f"--trainer.default_root_dir={tmp_path}"]  # fmt: skip
    assert main(args) == 2
    assert f"{path}: state_dict.{name} has shape (3, 1)" in one_line(capsys)


def test_a_checkpoint_naming_another_encoder_class_is_one_line(
    tiny_checkpoint, clips, tmp_path, capsys
):
    encoder = {"class_path": "lit_mrl.models.LogMelStats"}  # trusted, but not these tensors
    path = crafted(tmp_path, tiny_checkpoint, encoder=encoder)
    assert embed(capsys, tmp_path / "e", "--checkpoint", path) == 2
    assert "has tensors the model does not" in one_line(capsys)


class RunsCode:
    """Unpickling this runs ``touch marker``."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_a_pickle_given_to_fit_ckpt_path_is_one_line(tiny_shards, tmp_path, capsys):
    path = tmp_path / "pickle.ckpt"
    marker = tmp_path / "ran"
    torch.save({"state_dict": {}, "hyper_parameters": RunsCode(marker)}, path)
    args = ["fit", *TINY_FIT, f"--data.root={tiny_shards}", f"--ckpt_path={path}",
            f"--trainer.default_root_dir={tmp_path}"]  # fmt: skip
    assert main(args) == 2
    assert f"{path} is not a readable checkpoint" in one_line(capsys)
    assert not marker.exists()


# --- non-finite numbers in training -------------------------------------------------------


def test_fit_refuses_init_weights_holding_nan(tiny_checkpoint, tiny_shards, tmp_path, capsys):
    ckpt = torch.load(tiny_checkpoint, weights_only=True)
    name = next(n for n in ckpt["state_dict"] if n.startswith("audio_encoder.encoder"))
    ckpt["state_dict"][name] = torch.full_like(ckpt["state_dict"][name], float("nan"))
    path = tmp_path / "nan.ckpt"
    torch.save(ckpt, path)
    args = ["fit", *TINY_FIT, f"--data.root={tiny_shards}", f"--model.init_args.init_weights={path}",
            f"--trainer.default_root_dir={tmp_path}"]  # fmt: skip
    assert main(args) == 2
    assert f"{path}: {name} holds" in one_line(capsys)


def test_fit_stops_at_a_non_finite_loss_naming_the_step(tiny_shards, tmp_path, capsys, monkeypatch):
    from lit_mrl.methods import SupervisedTaggingModule

    real = SupervisedTaggingModule._shared_step

    def nan_at_step_one(self, batch, stage):
        loss = real(self, batch, stage)
        return loss * float("nan") if stage == "train" and self.global_step == 1 else loss

    monkeypatch.setattr(SupervisedTaggingModule, "_shared_step", nan_at_step_one)
    args = [
        "fit",
        *TINY_FIT,
        f"--data.root={tiny_shards}",
        f"--trainer.default_root_dir={tmp_path}",
    ]
    assert main(args) == 2
    line = one_line(capsys)
    assert "train/loss is nan at step 1" in line
    assert not list(tmp_path.glob("**/last.ckpt"))  # the broken state is never saved


# --- signals ------------------------------------------------------------------------------


@pytest.mark.parametrize(("sig", "code"), [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_a_signal_stops_fit_with_its_exit_code_and_a_checkpoint_to_resume(
    tiny_shards, tmp_path, sig, code
):
    args = [sys.executable, "-m", "lit_mrl", "fit", *TINY_FIT, f"--data.root={tiny_shards}",
            f"--trainer.default_root_dir={tmp_path}", "--trainer.max_epochs=100000",
            "--trainer.limit_val_batches=0", "--trainer.enable_checkpointing=true"]  # fmt: skip
    env = {**os.environ, "WANDB_MODE": "disabled", "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env=env, cwd=ROOT)  # fmt: skip
    output = []
    for line in proc.stdout:  # wait until training runs
        output.append(line)
        if "parameters (" in line:
            break
    time.sleep(2.0)
    proc.send_signal(sig)
    rest, _ = proc.communicate(timeout=60)
    text = "".join(output) + rest
    assert proc.returncode == code, text
    (last,) = tmp_path.glob("**/last.ckpt")
    assert "resume with --ckpt_path" in text
    assert str(last) in text
    state = torch.load(last, weights_only=True)
    assert state["global_step"] > 0
    if sig == signal.SIGTERM:  # and the run resumes from it, to the end of two more epochs
        resume = ["fit", *TINY_FIT, f"--data.root={tiny_shards}", f"--ckpt_path={last}",
                  f"--trainer.default_root_dir={tmp_path}", "--trainer.limit_val_batches=0",
                  f"--trainer.max_epochs={state['epoch'] + 2}"]  # fmt: skip
        assert main(resume) == 0
        newest = max(tmp_path.glob("**/*.ckpt"), key=lambda p: p.stat().st_mtime_ns)
        assert torch.load(newest, weights_only=True)["global_step"] > state["global_step"]


def test_fit_ckpt_path_trusts_the_classes_of_the_runs_own_config(
    tiny_shards, tmp_path, monkeypatch
):
    (tmp_path / "my_encoders.py").write_text(
        "from lit_mrl.models import SmallCNN\nclass Enc(SmallCNN):\n    pass\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    mine = ["--model.init_args.encoder=my_encoders.Enc", "--model.init_args.encoder.widths=[4]"]
    args = ["fit", *TINY_FIT, f"--data.root={tiny_shards}", *mine,
            f"--trainer.default_root_dir={tmp_path / 'a'}"]  # fmt: skip
    assert main(args) == 0
    (ckpt,) = (tmp_path / "a").glob("**/*.ckpt")
    resumed = [*args[:-1], f"--trainer.default_root_dir={tmp_path / 'b'}", f"--ckpt_path={ckpt}",
               "--trainer.max_epochs=2"]  # fmt: skip
    assert main(resumed) == 0
