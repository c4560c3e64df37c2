"""Encoder artifacts: export, load anywhere a checkpoint goes, the Hub convention, no code run."""

import json

import numpy as np
import pytest
import torch

import lit_mrl.hear as hear
from lit_mrl.cli import main
from lit_mrl.formats.embeddings import load_split
from lit_mrl.formats.shard_writer import write_dataset
from lit_mrl.models import AudioEncoder, LogMelStats
from lit_mrl.models.export import CONFIG_NAME, WEIGHTS_NAME

SR = 16000


@pytest.fixture(scope="module")
def exported(tiny_checkpoint, tmp_path_factory):
    out = tmp_path_factory.mktemp("export") / "tiny"
    assert main(["export", str(tiny_checkpoint), "--out", str(out), "--license", "apache-2.0"]) == 0
    return out


@pytest.fixture
def clips(tmp_path):
    rng = np.random.default_rng(0)
    tracks = [(f"k{i}", 0.3 * rng.standard_normal(SR * (i + 1)).astype(np.float32), {})
              for i in range(3)]  # fmt: skip
    write_dataset(tmp_path / "clips", "clips", {"test": tracks}, SR)
    return tmp_path / "clips"


def embed(source, clips, out):
    args = ["embed", "--checkpoint", source, "--input", clips, "--out", out, "--num_workers", "0"]
    assert main([str(a) for a in args]) == 0
    return load_split(out, "test", timeline=True)


def test_export_writes_the_encoder_only_with_a_config_and_a_card(exported, tiny_checkpoint):
    config = json.loads((exported / CONFIG_NAME).read_text())
    assert config["format"] == "lit_mrl.audio_encoder"
    assert config["embed_dim"] == 8
    assert config["sample_rate"] == SR
    assert config["embedding"]["hop_seconds"] == 2.0
    assert config["provenance"]["license"] == "apache-2.0"
    assert config["provenance"]["method"] == "lit_mrl.methods.SupervisedTaggingModule"
    assert config["provenance"]["global_step"] > 0
    from safetensors.torch import load_file

    tensors = load_file(str(exported / WEIGHTS_NAME))
    assert tensors  # the encoder's weights, and nothing of the projector
    assert all(name.startswith(("encoder.", "frontend.")) for name in tensors)
    card = (exported / "README.md").read_text()
    assert "license: apache-2.0" in card
    assert "SmallCNN" in card


def test_embed_of_the_folder_equals_embed_of_the_checkpoint(
    exported, tiny_checkpoint, clips, tmp_path
):
    theirs = embed(tiny_checkpoint, clips, tmp_path / "from_ckpt")
    ours = embed(exported, clips, tmp_path / "from_folder")
    np.testing.assert_array_equal(ours.embeddings, theirs.embeddings)
    np.testing.assert_array_equal(ours.timeline, theirs.timeline)
    index = json.loads((tmp_path / "from_folder" / "index.json").read_text())
    assert "artifact" in json.dumps(index)


def test_from_pretrained_save_pretrained_round_trip(exported, tmp_path):
    encoder = AudioEncoder.from_pretrained(exported)
    audio = 0.1 * torch.randn(2, SR, generator=torch.Generator().manual_seed(0))
    with torch.inference_mode():
        expected = encoder(audio)
    again = AudioEncoder.from_pretrained(encoder.save_pretrained(tmp_path / "again"))
    with torch.inference_mode():
        torch.testing.assert_close(again(audio), expected, rtol=0, atol=0)
    assert hear.load_model(str(exported)).scene_embedding_size == 8


def test_a_python_built_encoder_needs_its_config_to_be_saved(tmp_path):
    encoder = AudioEncoder(LogMelStats())
    with pytest.raises(ValueError, match="no recorded config"):
        encoder.save_pretrained(tmp_path / "x")
    encoder.spec = {"encoder": {"class_path": "lit_mrl.models.LogMelStats"}}
    loaded = AudioEncoder.from_pretrained(encoder.save_pretrained(tmp_path / "x"))
    assert loaded.embed_dim == 192


def test_from_pretrained_reads_a_hub_repository_from_the_cache_offline(
    exported, tmp_path, monkeypatch
):
    commit = "0" * 40  # a pre-populated cache, laid out as huggingface_hub writes it
    repo = tmp_path / "hub" / "models--someone--tiny-encoder"
    snapshot = repo / "snapshots" / commit
    snapshot.mkdir(parents=True)
    for name in (CONFIG_NAME, WEIGHTS_NAME, "README.md"):
        (snapshot / name).write_bytes((exported / name).read_bytes())
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(commit)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    import huggingface_hub.constants as constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    encoder = AudioEncoder.from_pretrained("someone/tiny-encoder")
    assert encoder.embed_dim == 8
    with pytest.raises(FileNotFoundError, match="cannot fetch someone/absent"):
        AudioEncoder.from_pretrained("someone/absent")


def test_a_folder_naming_a_foreign_module_imports_nothing(exported, tmp_path, monkeypatch):
    marker = tmp_path / "imported"
    (tmp_path / "evil_module.py").write_text(
        f"open({str(marker)!r}, 'w').close()\nimport torch\nclass Enc(torch.nn.Module):\n"
        "    embed_dim = 8\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    folder = tmp_path / "crafted"
    folder.mkdir()
    (folder / WEIGHTS_NAME).write_bytes((exported / WEIGHTS_NAME).read_bytes())
    config = json.loads((exported / CONFIG_NAME).read_text())
    for crafted in ("evil_module.Enc", {"class_path": "evil_module.Enc"}):
        config["init_args"]["encoder"] = crafted
        (folder / CONFIG_NAME).write_text(json.dumps(config))
        with pytest.raises(ValueError, match=r"init_args\.encoder.* names 'evil_module\.Enc'"):
            AudioEncoder.from_pretrained(folder)
    assert not marker.exists()


def test_a_folder_with_tensors_of_another_shape_is_one_line(exported, tmp_path, capsys):
    from safetensors.torch import load_file, save_file

    folder = tmp_path / "shape"
    folder.mkdir()
    (folder / CONFIG_NAME).write_bytes((exported / CONFIG_NAME).read_bytes())
    tensors = load_file(str(exported / WEIGHTS_NAME))
    name = next(iter(tensors))
    tensors[name] = torch.zeros(1)
    save_file(tensors, str(folder / WEIGHTS_NAME))
    with pytest.raises(ValueError, match=rf"state_dict\.{name} has shape \(1,\)"):
        AudioEncoder.from_pretrained(folder)


def test_fit_starts_from_an_exported_folder(exported, tiny_shards, tmp_path):
    args = ["fit", "-c", "configs/pretrain/supervised.yaml", "-c", "tests/configs/tiny.yaml",
            f"--data.root={tiny_shards}", f"--trainer.default_root_dir={tmp_path}",
            "--trainer.logger=false", f"--model.init_args.init_weights={exported}"]  # fmt: skip
    assert main(args) == 0
