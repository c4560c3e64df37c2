import numpy as np
import pytest

from lit_mrl.embedding_store import done_keys, load_split, read_index, write_index, write_part


def rows(start, count, dim=4):
    rng = np.random.default_rng(start)
    out = []
    for i in range(start, start + count):
        length = 1 + i % 3
        timeline = rng.standard_normal((length, dim)).astype(np.float32)
        out.append(
            {
                "key": f"k{i}",
                "embedding": timeline.mean(0),
                "label": np.array([i % 2, 1 - i % 2], dtype=np.float32),
                "timeline": timeline,
                "timestamps": 1.5 + 2.0 * np.arange(length),
            }
        )
    return out


def test_parts_round_trip_exactly(tmp_path):
    first, second = rows(0, 3), rows(3, 2)
    write_part(tmp_path, "train", 0, first)
    write_part(tmp_path, "train", 1, second)
    data = load_split(tmp_path, "train", timeline=True)
    assert data.keys == [f"k{i}" for i in range(5)]
    assert data.embeddings.shape == (5, 4)
    assert data.labels.shape == (5, 2)
    for i, row in enumerate(first + second):
        timeline, stamps = data.track_timeline(i)
        np.testing.assert_array_equal(timeline, row["timeline"])
        np.testing.assert_array_equal(stamps, row["timestamps"])
        np.testing.assert_array_equal(data.embeddings[i], row["embedding"])
    assert done_keys(tmp_path, "train") == {f"k{i}" for i in range(5)}
    assert done_keys(tmp_path, "test") == set()


def test_missing_split_and_index_name_the_path(tmp_path):
    with pytest.raises(FileNotFoundError, match="valid"):
        load_split(tmp_path, "valid")
    with pytest.raises(FileNotFoundError, match=r"index\.json"):
        read_index(tmp_path)
    write_index(tmp_path, {"embed_dim": 4})
    assert read_index(tmp_path) == {"format_version": 1, "embed_dim": 4}


def test_temporary_parts_are_ignored(tmp_path):
    write_part(tmp_path, "train", 0, rows(0, 2))
    (tmp_path / "train-000001.npz.tmp").write_bytes(b"half written")
    assert load_split(tmp_path, "train").keys == ["k0", "k1"]
