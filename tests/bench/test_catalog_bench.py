import numpy as np
import torch

from bench.catalog import write_store, write_synthetic_head
from lit_mrl.catalog.head import read_head
from lit_mrl.formats.embeddings import load_split, read_index


def test_synthetic_store_and_head_fit_each_other(tmp_path):
    write_store(tmp_path / "store", tracks=50, dim=12, part_size=16, clusters=4, noise=0.1, seed=0)
    index = read_index(tmp_path / "store")
    assert [e.num_samples for e in index.splits["all"].parts] == [16, 16, 16, 2]
    tracks = load_split(tmp_path / "store", "all")
    assert tracks.embeddings.shape == (50, 12)
    assert set(tracks.labels.tolist()) <= set(range(4))
    write_synthetic_head(tmp_path / "store", tmp_path / "head", tags=5, hidden=[8], seeds=3)
    head = read_head(tmp_path / "head")
    head.check_embeddings(index.settings, index.embed_dim, "store")
    probs = head.scores(torch.from_numpy(tracks.embeddings))
    assert probs.shape == (3, 50, 5)
    assert np.isfinite(probs.numpy()).all()
