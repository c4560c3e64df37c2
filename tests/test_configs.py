"""Config drift: every YAML under configs/ parses and instantiates through the CLI."""

from pathlib import Path

import numpy as np
import pytest
import yaml

from lit_mrl.cli.lightning import make_cli
from lit_mrl.formats.embeddings import append_part, write_index
from lit_mrl.probe.module import ProbeModule

CONFIGS = Path(__file__).resolve().parent.parent / "configs"
METHOD_CONFIGS = sorted(
    str(p.relative_to(CONFIGS.parent))
    for p in CONFIGS.glob("*/*.yaml")
    if p.parent.name in ("pretrain", "demo") and p.stem != "augment"  # augment: an overlay
)
PROBE_CONFIGS = sorted(str(p.relative_to(CONFIGS.parent)) for p in CONFIGS.glob("probe/*.yaml"))


def instantiate(args):
    cli = make_cli(["-c", "configs/trainer.yaml", *args, "--trainer.logger=false"], run=False)
    return cli.model, cli.datamodule, cli.trainer


@pytest.mark.parametrize("config", METHOD_CONFIGS)
def test_method_configs_instantiate(config, tiny_shards, monkeypatch):
    monkeypatch.chdir(CONFIGS.parent)
    model, data, _ = instantiate(["-c", config, f"--data.root={tiny_shards}"])
    assert model.audio_encoder.embed_dim > 0
    assert data.sample_rate == model.sample_rate == 16000


def test_demo_augment_overlay_composes(tiny_shards, monkeypatch):
    from lit_mrl.data.augment import Compose

    monkeypatch.chdir(CONFIGS.parent)
    args = ["-c", "configs/demo/contrastive.yaml", "-c", "configs/demo/augment.yaml"]
    model, _, _ = instantiate([*args, f"--data.root={tiny_shards}"])
    assert isinstance(model.augment, Compose)
    assert len(model.augment) == 4


# the F0 rung is the class defaults (tests/test_sfnfnet.py builds every rung)
ENCODER_OVERLAYS = sorted(
    str(p.relative_to(CONFIGS.parent))
    for p in CONFIGS.glob("encoder/*.yaml")
    if p.stem != "sfnfnet_f0"
)


@pytest.mark.parametrize("overlay", ["configs/debug.yaml", *ENCODER_OVERLAYS])
def test_overlays_compose(overlay, tiny_shards, monkeypatch):
    monkeypatch.chdir(CONFIGS.parent)
    args = ["-c", "configs/pretrain/contrastive.yaml", "-c", overlay, f"--data.root={tiny_shards}"]
    model, data, trainer = instantiate(args)
    assert data.num_views == 2
    assert trainer.max_epochs >= 1
    if overlay.startswith("configs/encoder/"):
        rung = yaml.safe_load(Path(overlay).read_text())["model"]["init_args"]["encoder"]
        widths = rung["init_args"]["slow_widths"][-1] + rung["init_args"]["fast_widths"][-1]
        assert model.audio_encoder.embed_dim == widths  # the overlay replaced the paper's model


@pytest.fixture(scope="module")
def any_embeddings(tmp_path_factory):
    root = tmp_path_factory.mktemp("emb")
    rng = np.random.default_rng(0)
    for split in ("train", "valid", "test"):
        rows = [
            {
                "key": f"{split}{i}",
                "embedding": rng.standard_normal(8).astype(np.float32),
                "label": np.int64(i % 2),
                "timeline": rng.standard_normal((1, 8)).astype(np.float32),
                "timestamps": np.array([1.5]),
            }
            for i in range(4)
        ]
        append_part(root, split, rows)
    write_index(root, {"embed_dim": 8, "task": "multiclass", "vocabulary": ["a", "b"]})
    return root


@pytest.mark.parametrize("config", PROBE_CONFIGS)
def test_probe_configs_instantiate(config, any_embeddings, monkeypatch):
    monkeypatch.chdir(CONFIGS.parent)
    model, data, _ = instantiate(["-c", config, f"--data.init_args.root={any_embeddings}"])
    assert isinstance(model, ProbeModule)
    assert data.index.embed_dim == 8
    assert model.hparams.task in ("multilabel", "multiclass", "regression")
    assert model.hparams.max_steps > model.hparams.warmup_steps
