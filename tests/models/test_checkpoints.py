import pytest
import torch

from lit_mrl.checkpoints import UntrustedCheckpointError, load_pretrained
from lit_mrl.methods import SupervisedTaggingModule


def test_load_pretrained_rebuilds_the_trained_module(tiny_checkpoint):
    module = load_pretrained(tiny_checkpoint)
    assert isinstance(module, SupervisedTaggingModule)
    assert not module.training
    state = torch.load(tiny_checkpoint, weights_only=True)["state_dict"]
    for name, value in module.state_dict().items():
        torch.testing.assert_close(value, state[name], rtol=0, atol=0)
    assert module.embed(torch.zeros(2, 8000)).shape == (2, 8)


def test_load_pretrained_names_a_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"nope\.ckpt"):
        load_pretrained(tmp_path / "nope.ckpt")


def craft(tmp_path, source, hparams_update=None, class_path=None):
    """A copy of a real checkpoint whose hyper-parameters name other classes."""
    ckpt = torch.load(source, weights_only=True)
    if class_path is not None:
        ckpt["hyper_parameters"]["_class_path"] = class_path
    ckpt["hyper_parameters"].update(hparams_update or {})
    path = tmp_path / "crafted.ckpt"
    torch.save(ckpt, path)
    return path


@pytest.mark.parametrize(
    ("class_path", "hparams"),
    [
        ("subprocess.Popen", {"args": "touch {marker}", "shell": True}),
        ("os.system", {"command": "touch {marker}"}),
        ("collections.OrderedDict", {}),
        ("lit_mrl.checkpoints.importlib", {}),  # a module imported into lit_mrl, not a class
    ],
)
def test_a_checkpoint_naming_a_foreign_class_is_refused_and_runs_nothing(
    tiny_checkpoint, tmp_path, class_path, hparams
):
    marker = tmp_path / "ran"
    hparams = {k: v.format(marker=marker) if isinstance(v, str) else v for k, v in hparams.items()}
    path = craft(tmp_path, tiny_checkpoint, hparams, class_path)
    with pytest.raises(UntrustedCheckpointError, match=rf"_class_path names '{class_path}'"):
        load_pretrained(path)
    assert not marker.exists()


def test_a_nested_foreign_class_is_refused_before_anything_is_imported(
    tiny_checkpoint, tmp_path, monkeypatch
):
    marker = tmp_path / "imported"
    (tmp_path / "evil_module.py").write_text(
        f"open({str(marker)!r}, 'w').close()\nclass Enc: pass\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    encoder = {"class_path": "evil_module.Enc", "init_args": {}}
    path = craft(tmp_path, tiny_checkpoint, {"encoder": encoder})
    with pytest.raises(
        UntrustedCheckpointError, match=r"encoder\.class_path names 'evil_module\.Enc'"
    ):
        load_pretrained(path)
    assert not marker.exists()  # the module was never imported


def test_a_class_the_user_allows_is_built(tiny_checkpoint, tmp_path, monkeypatch):
    (tmp_path / "my_encoders.py").write_text(
        "from lit_mrl.models import SmallCNN\nclass Enc(SmallCNN):\n    pass\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    encoder = {"class_path": "my_encoders.Enc", "init_args": {"widths": [4, 8]}}
    path = craft(tmp_path, tiny_checkpoint, {"encoder": encoder})
    with pytest.raises(UntrustedCheckpointError, match=r"my_encoders\.Enc"):
        load_pretrained(path)
    module = load_pretrained(path, allowed_classes=["my_encoders.Enc"])
    assert module.audio_encoder.encoder_class.split(".")[-1] == "Enc"


def test_a_truncated_checkpoint_is_a_one_line_error(tiny_checkpoint, tmp_path):
    path = tmp_path / "cut.ckpt"
    path.write_bytes(tiny_checkpoint.read_bytes()[:1000])
    with pytest.raises(ValueError, match=r"cut\.ckpt is not a readable checkpoint"):
        load_pretrained(path)
