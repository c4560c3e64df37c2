"""Same seed, same weights; a resumed run ends where the uninterrupted one does."""

import pytest
import torch

from lit_mrl.cli import main
from lit_mrl.data import ShardDataModule


def fit(tmp_path, shards, *extra):
    args = [
        "fit",
        "-c", "configs/trainer.yaml",
        "-c", "configs/pretrain/contrastive.yaml",
        "-c", "tests/configs/tiny.yaml",
        "-c", "configs/encoder/sfnfnet_tiny.yaml",  # stochastic depth draws from the global RNG
        f"--data.root={shards}",
        f"--trainer.default_root_dir={tmp_path}",
        "--trainer.logger=false",
        "--data.num_workers=1",
        *extra,
    ]  # fmt: skip
    with pytest.MonkeyPatch.context() as patch:
        for name in ("PL_GLOBAL_SEED", "PL_SEED_WORKERS"):  # set by the CLI, undone here
            patch.setenv(name, "0")
        main(args)
    return torch.load(tmp_path / "checkpoints" / "last.ckpt", weights_only=True)


def assert_same_weights(a, b):
    assert a.keys() == b.keys()
    for name in a:
        assert torch.equal(a[name], b[name]), name


def test_same_seed_gives_bit_identical_training(tiny_shards, tmp_path):
    first = fit(tmp_path / "a", tiny_shards, "--trainer.max_epochs=2")
    second = fit(tmp_path / "b", tiny_shards, "--trainer.max_epochs=2")
    assert first["global_step"] == second["global_step"] == 4
    assert_same_weights(first["state_dict"], second["state_dict"])
    other = fit(tmp_path / "c", tiny_shards, "--trainer.max_epochs=2", "--seed_everything=1")
    assert not torch.equal(
        other["state_dict"]["audio_encoder.encoder.slow_stem.0.weight"],
        first["state_dict"]["audio_encoder.encoder.slow_stem.0.weight"],
    )


def test_resume_from_a_mid_run_checkpoint_matches_the_uninterrupted_run(tiny_shards, tmp_path):
    straight = fit(tmp_path / "straight", tiny_shards, "--trainer.max_epochs=4")
    fit(tmp_path / "split", tiny_shards, "--trainer.max_epochs=2")
    last = tmp_path / "split" / "checkpoints" / "last.ckpt"
    resumed = fit(tmp_path / "split", tiny_shards, "--trainer.max_epochs=4", f"--ckpt_path={last}")
    assert straight["global_step"] == resumed["global_step"] == 8
    assert_same_weights(straight["state_dict"], resumed["state_dict"])


def test_training_stream_depends_on_seed_and_epoch_only(tiny_shards):
    def keys(seed, epochs):
        dm = ShardDataModule(str(tiny_shards), batch_size=4, num_workers=0, seed=seed)
        loader = dm.train_dataloader()
        return [[key for batch in loader for key in batch["key"]] for _ in range(epochs)]

    assert keys(0, 2) == keys(0, 2)
    first, second = keys(0, 2)
    assert first != second  # a new epoch draws new shards, order and crops
    assert keys(1, 1)[0] != first


def test_two_workers_draw_different_crops(tiny_shards):
    dm = ShardDataModule(str(tiny_shards), batch_size=4, num_workers=2, seed=0)
    batches = [batch["audio"] for batch, _ in zip(dm.train_dataloader(), range(2), strict=False)]
    assert not torch.equal(batches[0], batches[1])
