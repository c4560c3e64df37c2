import pytest
import torch
from torch import nn

from lit_mrl.callbacks import OnlineProbe
from lit_mrl.methods import SupervisedTaggingModule
from lit_mrl.models import LogMelStats


class Constant(nn.Module):
    """An encoder that has learned nothing: the same embedding for every input."""

    embed_dim = 4

    def forward(self, spec):
        return torch.zeros(len(spec), 4) + 0 * spec.mean()


@pytest.mark.parametrize(
    ("encoder", "low", "high"), [(LogMelStats(), 0.9, 1.0), (Constant(), 0.0, 0.5)]
)
def test_ridge_probe_scores_what_the_embeddings_carry(tiny_multiclass_shards, encoder, low, high):
    module = SupervisedTaggingModule(encoder, num_tags=3, projector_dims=[8]).train()
    callback = OnlineProbe({"bands": str(tiny_multiclass_shards)}, clip_seconds=0.5)
    scores = callback.probe(module)
    assert list(scores) == ["online_probe/bands/accuracy"]
    assert low <= scores["online_probe/bands/accuracy"] <= high  # 3 bands: chance is 1/3
    assert module.training  # the mode it found the module in


def test_a_task_at_another_rate_is_refused(tiny_shards):
    module = SupervisedTaggingModule(
        LogMelStats(), num_tags=3, projector_dims=[8], sample_rate=22050
    )
    with pytest.raises(ValueError, match="16000 Hz but the model expects 22050 Hz"):
        OnlineProbe({"tags": str(tiny_shards)}).probe(module)
