"""The paper's six recipes (configs/paper/) train through the real CLI, and scale out."""

import pytest

from lit_mrl.data.datamodule import ShardDataModule


@pytest.mark.parametrize("rank", [0, 1])
def test_every_ddp_rank_validates_on_the_whole_split(tiny_shards, monkeypatch, rank):
    # one validation shard, two ranks: a rank left without batches would hang DDP
    monkeypatch.setenv("RANK", str(rank))
    monkeypatch.setenv("WORLD_SIZE", "2")
    dm = ShardDataModule(str(tiny_shards), batch_size=3, num_workers=0, clip_seconds=0.5)
    keys = [k for batch in dm.val_dataloader() for k in batch["key"]]
    assert sorted(keys) == [f"valid_{i:03d}" for i in range(8)]
