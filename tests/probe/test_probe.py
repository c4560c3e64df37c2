import lightning as L
import numpy as np
import pytest
import torch
from lightning.pytorch.cli import LightningCLI

from lit_mrl.data import ShardDataModule
from lit_mrl.data.embedding_datamodule import EmbeddingDataModule, ShuffledBatches, write_arrays
from lit_mrl.formats.embeddings import write_index
from lit_mrl.losses import l2_penalty, probe_loss
from lit_mrl.models.heads import MLPHead, seeded_mlp_head
from lit_mrl.probe.module import ProbeModule


def toy_embeddings(root, task, dim=16, num_outputs=4, sizes=(240, 80, 80), seed=0):
    """Gaussian clusters, one per class; labels: the cluster, or a linear map (regression)."""
    rng = np.random.default_rng(seed)
    centres = 2.0 * rng.standard_normal((num_outputs, dim))
    projection = rng.standard_normal((dim, num_outputs)) / np.sqrt(dim)
    for split, size in zip(("train", "valid", "test"), sizes, strict=True):
        classes = rng.integers(0, num_outputs, size)
        emb = centres[classes] + rng.standard_normal((size, dim))
        if task == "multiclass":
            labels = classes
        elif task == "multilabel":
            labels = np.eye(num_outputs, dtype=np.float32)[classes]
        else:
            labels = (emb @ projection).astype(np.float32)  # linear in the embedding
        write_arrays(root, split, emb, labels)
    vocabulary = [f"label{i}" for i in range(num_outputs)]
    write_index(root, {"embed_dim": dim, "task": task, "vocabulary": vocabulary})
    return root


def trainer(steps, **kwargs):
    defaults = {
        "max_steps": steps,
        "logger": False,
        "enable_checkpointing": False,
        "enable_progress_bar": False,
        "enable_model_summary": False,
        "num_sanity_val_steps": 0,
    }
    return L.Trainer(accelerator="cpu", **{**defaults, **kwargs})


class EncoderModeCheck(L.Callback):
    def __init__(self):
        self.checked = 0

    def on_train_batch_start(self, trainer, module, batch, batch_idx):
        assert module.training
        assert not any(m.training for m in module.audio_encoder.modules())
        assert not any(p.requires_grad for p in module.audio_encoder.parameters())
        self.checked += 1


@pytest.mark.filterwarnings("ignore:Found .* module.* in eval mode")
def test_probe_does_not_update_encoder(tiny_checkpoint, tiny_shards):
    probe = ProbeModule(
        "multilabel",
        3,
        hidden_dims=[8],
        lr=1e-2,
        warmup_steps=0,
        max_steps=3,
        checkpoint=str(tiny_checkpoint),
    )
    assert probe.head.linears()[0].in_features == 8  # the tiny encoder's embed_dim
    before = {k: v.clone() for k, v in probe.audio_encoder.state_dict().items()}
    head_before = [p.detach().clone() for p in probe.head.parameters()]
    data = ShardDataModule(
        str(tiny_shards), batch_size=4, num_workers=0, clip_seconds=0.5, shuffle_buffer=8
    )
    check = EncoderModeCheck()
    trainer(3, callbacks=[check], limit_val_batches=1).fit(probe, data)
    assert check.checked == 3
    assert not any(m.training for m in probe.audio_encoder.modules())
    for name, value in probe.audio_encoder.state_dict().items():
        torch.testing.assert_close(value, before[name], rtol=0, atol=0)  # incl. batch-norm stats
    assert all(p.grad is None for p in probe.audio_encoder.parameters())
    assert any(
        not torch.equal(p, q) for p, q in zip(probe.head.parameters(), head_before, strict=True)
    )
    probe.train()
    assert probe.head.training
    assert not probe.audio_encoder.training


@pytest.mark.parametrize(
    ("task", "name", "threshold"),
    [("multilabel", "roc_auc", 0.95), ("multiclass", "accuracy", 0.9), ("regression", "r2", 0.8)],
)
def test_each_task_learns_a_separable_problem(tmp_path, task, name, threshold):
    torch.manual_seed(0)  # initial weights and dropout masks
    data = EmbeddingDataModule(str(toy_embeddings(tmp_path, task)), batch_size=32, seed=0)
    probe = ProbeModule(
        task, 4, hidden_dims=[32], dropout=0.1, lr=1e-2, warmup_steps=5, max_steps=150
    )
    fit = trainer(150)
    fit.fit(probe, data)
    (scores,) = fit.test(probe, data, verbose=False)
    assert scores[f"test/{name}"] > threshold
    assert probe.hparams.class_names == [f"label{i}" for i in range(4)]  # taken from the data
    if task == "regression":
        assert {"test/r2_label0", "test/r2_label3"} <= set(scores)


def test_in_dim_comes_from_the_data_and_mismatches_fail(tmp_path):
    data = EmbeddingDataModule(str(toy_embeddings(tmp_path, "multiclass", dim=12)), batch_size=64)
    probe = ProbeModule("multiclass", 4, lr=1e-2, warmup_steps=0, max_steps=2)
    trainer(2).fit(probe, data)
    assert probe.head.linears()[0].in_features == 12
    assert probe.hparams.in_dim == 12
    with pytest.raises(ValueError, match=r"4 labels .* num_outputs=5"):
        trainer(1).fit(ProbeModule("multiclass", 5, in_dim=12), data)
    with pytest.raises(ValueError, match="multiclass task but the probe has task=multilabel"):
        trainer(1).fit(ProbeModule("multilabel", 4, in_dim=12), data)


def test_key_probe_logs_the_mirex_score(tmp_path):
    rng = np.random.default_rng(0)
    names = sorted(
        f"{t} {m}"
        for t in ["C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B"]
        for m in ("major", "minor")
    )
    centres = 3.0 * rng.standard_normal((24, 16))
    for split in ("train", "valid", "test"):
        classes = np.arange(240) % 24
        write_arrays(tmp_path, split, centres[classes] + rng.standard_normal((240, 16)), classes)
    write_index(tmp_path, {"embed_dim": 16, "task": "multiclass", "vocabulary": names})
    data = EmbeddingDataModule(str(tmp_path), batch_size=48)
    probe = ProbeModule(
        "multiclass", 24, hidden_dims=[], lr=1e-2, warmup_steps=5, max_steps=100, metric="mirex_key"
    )
    fit = trainer(100)
    fit.fit(probe, data)
    (scores,) = fit.test(probe, data, verbose=False)
    assert scores["test/mirex_key"] >= scores["test/accuracy"] > 0.9


@pytest.mark.parametrize("task", ["multilabel", "multiclass", "regression"])
def test_probe_loss_of_an_ensemble_is_each_members_loss(task):
    torch.manual_seed(0)
    preds = torch.randn(3, 8, 5)
    labels = {
        "multilabel": (torch.rand(8, 5) < 0.5).float(),
        "multiclass": torch.randint(0, 5, (8,)),
        "regression": torch.randn(8, 5),
    }[task]
    stacked = probe_loss(preds, labels, task)
    assert stacked.shape == (3,)
    for e in range(3):
        torch.testing.assert_close(stacked[e], probe_loss(preds[e], labels, task))


def test_l2_penalty_is_keras_l2_on_kernels():
    head = MLPHead(4, 2, [3])
    kernels = [lin.weight for lin in head.linears()]
    expected = 1e-3 * sum((k**2).sum() for k in kernels)
    torch.testing.assert_close(l2_penalty(kernels, 1e-3), expected)
    stacked = [torch.stack([k.T, 2 * k.T]) for k in kernels]  # (E=2, in, out)
    torch.testing.assert_close(
        l2_penalty(stacked, torch.tensor([1e-3, 1.0])), torch.stack([expected, 4e3 * expected])
    )


def test_mlp_head_keras_init_and_seeding():
    head = seeded_mlp_head(6, 3, [5, 4], 0.5, seed=7)
    assert [type(m).__name__ for m in head.hidden] == ["Linear", "ReLU", "Dropout"] * 2
    assert all(torch.count_nonzero(lin.bias) == 0 for lin in head.linears())
    state = torch.random.get_rng_state()
    again = seeded_mlp_head(6, 3, [5, 4], 0.0, seed=7)
    assert torch.equal(torch.random.get_rng_state(), state)  # the global RNG is untouched
    for a, b in zip(head.parameters(), again.parameters(), strict=True):
        assert torch.equal(a, b)


def test_shuffled_batches_are_a_new_seeded_permutation_each_epoch():
    sampler = ShuffledBatches(10, 4, seed=3)
    first, second = list(sampler), list(sampler)
    assert [len(b) for b in first] == [4, 4, 2]
    assert sorted(torch.cat(first).tolist()) == list(range(10))
    assert not torch.equal(torch.cat(first), torch.cat(second))
    assert torch.equal(torch.cat(list(ShuffledBatches(10, 4, seed=3))), torch.cat(first))


def test_probe_config_fits_through_a_lightning_cli(tmp_path):
    """configs/probe/demo.yaml with EmbeddingDataModule (needs the CLI's subclass_mode_data)."""
    rng = np.random.default_rng(0)
    names = sorted(
        f"{t} {m}"
        for t in ["C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B"]
        for m in ("major", "minor")
    )
    for split in ("train", "valid", "test"):
        write_arrays(tmp_path, split, rng.standard_normal((48, 8)), np.arange(48) % 24)
    write_index(tmp_path, {"embed_dim": 8, "task": "multiclass", "vocabulary": names})
    cli = LightningCLI(
        L.LightningModule,
        L.LightningDataModule,
        subclass_mode_model=True,
        subclass_mode_data=True,
        save_config_callback=None,
        run=False,
        args=[
            "-c", "configs/probe/demo.yaml", f"--data.init_args.root={tmp_path}",
            "--trainer.max_steps=2", "--trainer.logger=false", "--trainer.enable_checkpointing=false",
            "--trainer.enable_progress_bar=false", f"--trainer.default_root_dir={tmp_path}",
        ],
    )  # fmt: skip
    assert isinstance(cli.model, ProbeModule)
    assert cli.model.hparams.metric == "mirex_key"
    cli.trainer.fit(cli.model, cli.datamodule)
    assert cli.trainer.global_step == 2
