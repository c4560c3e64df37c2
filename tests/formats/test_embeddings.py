import json
import tracemalloc

import numpy as np
import pytest

from lit_mrl.embed.output import done_keys
from lit_mrl.formats.embedding_index import read_journals, recorded_parts
from lit_mrl.formats.embeddings import (
    EmbeddingIndex,
    PartWriter,
    append_part,
    existing_parts,
    iter_timelines,
    load_split,
    read_index,
    write_index,
)

INDEX = {"embed_dim": 4, "task": "multilabel", "vocabulary": ["a", "b"], "splits": {}}


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
    write_index(tmp_path, INDEX)
    entries = [append_part(tmp_path, "train", first), append_part(tmp_path, "train", second)]
    assert [e.name for e in entries] == ["train-000000.npz", "train-000001.npz"]
    assert [(e.num_samples, e.num_windows) for e in entries] == [(3, 6), (2, 3)]
    data = load_split(tmp_path, "train", timeline=True)
    assert data.keys == [f"k{i}" for i in range(5)]
    assert data.embeddings.shape == (5, 4)
    assert data.labels.shape == (5, 2)
    for i, row in enumerate(first + second):
        timeline, stamps = data.track_timeline(i)
        np.testing.assert_array_equal(timeline, row["timeline"])
        np.testing.assert_array_equal(stamps, row["timestamps"])
        np.testing.assert_array_equal(data.embeddings[i], row["embedding"])
    assert done_keys(tmp_path, entries) == {f"k{i}" for i in range(5)}
    assert read_index(tmp_path).splits["train"].num_samples == 5


def test_missing_split_and_index_name_the_path(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"index\.json"):
        read_index(tmp_path)
    with pytest.raises(FileNotFoundError, match=r"index\.json"):
        load_split(tmp_path, "valid")
    write_index(tmp_path, {**INDEX, "fingerprint": "f"})
    with pytest.raises(FileNotFoundError, match="no embeddings of split 'valid'"):
        load_split(tmp_path, "valid")
    assert read_index(tmp_path) == EmbeddingIndex(
        4, "multilabel", ["a", "b"], {}, {"fingerprint": "f"}
    )
    assert json.loads((tmp_path / "index.json").read_text())["format_version"] == 2


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"embed_dim": "4"}, "field 'embed_dim'"),
        ({"task": "tagging"}, "field 'task'"),
        ({"vocabulary": "a,b"}, "field 'vocabulary'"),
        ({"format_version": 9}, "format_version 9"),
    ],
)
def test_an_invalid_index_names_the_file_and_field(tmp_path, change, message):
    (tmp_path / "index.json").write_text(json.dumps({"format_version": 2, **INDEX, **change}))
    with pytest.raises(ValueError, match=message):
        read_index(tmp_path)


def test_rank_writers_have_their_own_series_and_journals(tmp_path):
    for writer, start in ((None, 0), ("r001", 10)):
        parts = PartWriter(tmp_path, "train", part_size=2, writer=writer)
        for row in rows(start, 3):
            parts.add(row)
        parts.flush()
    names = [p.name for p in existing_parts(tmp_path, "train")]
    assert names == [
        "train-000000.npz", "train-000001.npz", "train-r001-000000.npz", "train-r001-000001.npz"
    ]  # fmt: skip
    journalled = read_journals(tmp_path)["train"]
    assert sorted(e.name for e in journalled) == names
    assert done_keys(tmp_path, journalled) == {f"k{i}" for i in (0, 1, 2, 10, 11, 12)}
    write_index(tmp_path, INDEX)
    index = read_index(tmp_path)
    index.splits = recorded_parts(tmp_path, index)  # what embed's last step lists
    write_index(tmp_path, index)
    assert sorted(load_split(tmp_path, "train").keys) == sorted(done_keys(tmp_path, journalled))
    again = PartWriter(tmp_path, "train", part_size=2, writer="r001")
    assert again.next_index == 2  # a resumed rank continues its own series


def test_track_embeddings_load_without_reading_timelines(tmp_path):
    """A store whose timelines are 400x the track embeddings: loading the tracks stays small."""
    long_rows = rows(0, 20)
    for row in long_rows:
        row["timeline"] = np.ones((2000, 4), dtype=np.float32)
        row["timestamps"] = np.arange(2000, dtype=np.float32)
    write_index(tmp_path, INDEX)
    append_part(tmp_path, "train", long_rows)
    tracemalloc.start()
    data = load_split(tmp_path, "train")
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    timeline_bytes = 20 * 2000 * 4 * 4
    assert data.embeddings.shape == (20, 4)
    assert peak < timeline_bytes / 10, peak  # the 640 kB of timelines were never read
    streamed = list(iter_timelines(tmp_path, "train"))
    assert [key for key, _, _ in streamed] == [f"k{i}" for i in range(20)]
    assert streamed[3][1].shape == (2000, 4)


def test_temporary_parts_are_ignored(tmp_path):
    write_index(tmp_path, INDEX)
    append_part(tmp_path, "train", rows(0, 2))
    (tmp_path / "train-000001.npz.tmp").write_bytes(b"half written")
    assert load_split(tmp_path, "train").keys == ["k0", "k1"]
