import pytest
import torch

from lit_mrl.checkpoints import load_pretrained
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
