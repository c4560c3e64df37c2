import io
import pickle
import shutil
import tarfile

import pytest
import torch

from lit_mrl.data.datamodule import ShardDataModule
from lit_mrl.data.labels import encode_labels


def first_batches(loader, n):
    out = []
    for batch in loader:
        out.append(batch)
        if len(out) == n:
            break
    return out


@pytest.mark.parametrize("num_views", [1, 2])
def test_train_batches_are_dicts_of_crops(tiny_shards, num_views):
    dm = ShardDataModule(
        str(tiny_shards), batch_size=4, num_workers=0, clip_seconds=0.5, num_views=num_views
    )
    (batch,) = first_batches(dm.train_dataloader(), 1)
    assert batch["audio"].shape == (4, num_views, 8000)
    assert batch["audio"].dtype == torch.float32
    assert batch["labels"].shape == (4, 3)
    assert set(batch["labels"].unique().tolist()) <= {0.0, 1.0}
    assert len(batch["key"]) == 4


def test_two_views_are_close_but_different(tiny_shards):
    dm = ShardDataModule(
        str(tiny_shards), batch_size=8, num_workers=0, clip_seconds=0.25, num_views=2
    )
    (batch,) = first_batches(dm.train_dataloader(), 1)
    a, b = batch["audio"][:, 0], batch["audio"][:, 1]
    assert not torch.equal(a, b)


def test_epoch_length_is_fixed_batches_per_rank(tiny_shards):
    dm = ShardDataModule(str(tiny_shards), batch_size=4, num_workers=0, clip_seconds=0.5)
    assert dm.train_batches_per_epoch() == 4  # 16 train clips / 4
    assert len(list(dm.train_dataloader())) == 4
    dm = ShardDataModule(
        str(tiny_shards), batch_size=4, num_workers=0, clip_seconds=0.5, steps_per_epoch=7
    )
    assert len(list(dm.train_dataloader())) == 7  # resampled: any length, same on every rank


def test_epoch_length_divides_by_world_size(tiny_shards):
    dm = ShardDataModule(str(tiny_shards), batch_size=4, num_workers=0)

    class FakeTrainer:
        global_rank, world_size = 1, 2

    dm.trainer = FakeTrainer()
    assert dm.train_batches_per_epoch() == 2


def test_val_loader_is_deterministic_and_complete(tiny_shards):
    dm = ShardDataModule(
        str(tiny_shards), batch_size=3, num_workers=0, clip_seconds=0.5, num_views=2
    )
    runs = [list(dm.val_dataloader()) for _ in range(2)]
    keys = [k for batch in runs[0] for k in batch["key"]]
    assert sorted(keys) == [f"valid_{i:03d}" for i in range(8)]
    for a, b in zip(*runs, strict=True):
        assert a["key"] == b["key"]
        torch.testing.assert_close(a["audio"], b["audio"], rtol=0, atol=0)


def test_two_workers_draw_different_crops(tiny_shards):
    torch.manual_seed(0)
    dm = ShardDataModule(str(tiny_shards), batch_size=2, num_workers=2, steps_per_epoch=4)
    batches = list(dm.train_dataloader())
    audio = [b["audio"] for b in batches]
    # WebLoader alternates workers: batches 0 and 1 come from different workers.
    assert not torch.equal(audio[0], audio[1])


def test_multiclass_labels_are_indices(tiny_multiclass_shards):
    dm = ShardDataModule(str(tiny_multiclass_shards), batch_size=4, num_workers=0)
    (batch,) = first_batches(dm.train_dataloader(), 1)
    assert batch["labels"].dtype == torch.long
    assert batch["labels"].shape == (4,)


def test_unknown_label_is_rejected():
    with pytest.raises(ValueError, match="not in the vocabulary"):
        encode_labels({"key": "k", "labels": ["jazz"]}, "multilabel", ["rock"])
    with pytest.raises(ValueError, match="one label"):
        encode_labels({"key": "k", "labels": ["a", "b"]}, "multiclass", ["a", "b"])


def test_pickle_members_are_never_unpickled(tiny_shards, tmp_path):
    """A shard with an extra .pyd member loads; the pickle inside is never executed."""
    root = tmp_path / "evil"
    shutil.copytree(tiny_shards, root)
    target = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            return (target.write_text, ("pwned",))

    shard = sorted(root.glob("tiny-train-*.tar"))[0]
    payload = pickle.dumps(Evil())
    with tarfile.open(shard) as tar:
        first_key = tar.getnames()[0].split(".")[0]
        members = [(m, tar.extractfile(m).read()) for m in tar.getmembers()]
    evil = tarfile.TarInfo(f"{first_key}.pyd")
    evil.size = len(payload)
    members.insert(1, (evil, payload))  # inside the first sample's group
    with tarfile.open(shard, "w") as tar:
        for member, data in members:
            tar.addfile(member, io.BytesIO(data))
    dm = ShardDataModule(str(root), batch_size=4, num_workers=0, test_split="train")
    keys = [k for b in dm.test_dataloader() for k in b["key"]]
    assert len(keys) == 16
    assert first_key in keys
    assert not target.exists()
