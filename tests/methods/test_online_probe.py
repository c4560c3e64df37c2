from types import SimpleNamespace

import lightning as L
import pytest
import torch
from lightning.pytorch.loggers import Logger
from torch import nn

from lit_mrl.callbacks import OnlineProbe
from lit_mrl.data import ShardDataModule
from lit_mrl.methods import SupervisedTaggingModule
from lit_mrl.models import LogMelStats
from lit_mrl.models.sfnfnet import SFNFNetF0


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


class Recorder(Logger):
    """Keeps every ``log_metrics`` call."""

    def __init__(self):
        super().__init__()
        self.rows = []

    name, version = "recorder", 0

    def log_hyperparams(self, params, *args, **kwargs):
        pass

    def log_metrics(self, metrics, step=None):
        self.rows.append(dict(metrics))


def test_baseline_and_random_bars_are_logged_unchanged_with_every_probe(
    tiny_multiclass_shards, tmp_path
):
    torch.manual_seed(0)
    module = SupervisedTaggingModule(SFNFNetF0.tiny(), num_tags=3, projector_dims=[8])
    callback = OnlineProbe({"bands": str(tiny_multiclass_shards)}, clip_seconds=0.5)
    recorder = Recorder()
    trainer = L.Trainer(
        max_epochs=2, limit_train_batches=2, limit_val_batches=0, log_every_n_steps=1,
        logger=recorder,
        callbacks=[callback], accelerator="cpu", default_root_dir=tmp_path,
        enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
    )  # fmt: skip
    data = ShardDataModule(
        str(tiny_multiclass_shards), batch_size=4, num_workers=0, clip_seconds=0.5
    )
    trainer.fit(module, data)
    key = "online_probe/bands/accuracy"
    probes = [row for row in recorder.rows if key in row]
    assert len(probes) == 3  # before training, after epochs 1 and 2
    for bar in ("_logmel", "_random"):
        assert len({row[key + bar] for row in probes}) == 1, bar  # one value, every time
    # random weights: the encoder before its first step; the baseline: LogMelStats
    assert probes[0][key + "_random"] == probes[0][key]
    baseline = SupervisedTaggingModule(LogMelStats(), num_tags=3, projector_dims=[8])
    fresh = OnlineProbe({"bands": str(tiny_multiclass_shards)}, clip_seconds=0.5)
    assert probes[0][key + "_logmel"] == fresh.probe(baseline)[key]


def test_random_bar_scores_the_built_weights_when_fit_starts_from_others(tiny_multiclass_shards):
    torch.manual_seed(0)
    module = SupervisedTaggingModule(SFNFNetF0.tiny(), num_tags=3, projector_dims=[8])
    callback = OnlineProbe({"bands": str(tiny_multiclass_shards)}, clip_seconds=0.5)
    built = callback.probe(module)
    callback.setup(SimpleNamespace(is_global_zero=True), module, "fit")
    with torch.no_grad():  # what init_weights or a resumed checkpoint does after setup
        for param in module.audio_encoder.parameters():
            param.add_(torch.randn_like(param))
    trained = {k: v.clone() for k, v in module.audio_encoder.state_dict().items()}
    key = "online_probe/bands/accuracy"
    bars = callback.bars(module, {key: -1.0})  # what the trained weights would score now
    assert bars[key + "_random"] == built[key]  # the built weights were scored again
    for name, value in module.audio_encoder.state_dict().items():
        assert torch.equal(value, trained[name]), name  # its own weights are back
