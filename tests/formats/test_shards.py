import io
import json
import pickle
import tarfile
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import webdataset as wds

from lit_mrl.formats.info import DatasetInfo, SplitInfo, read_info, shard_paths, write_info
from lit_mrl.formats.shard_writer import ShardWriter, write_dataset, write_shards
from lit_mrl.formats.shards import (
    decode_audio,
    encode_flac,
    iter_shard,
    parse_shard_name,
    read_shard_meta,
    sanitize_key,
    shard_name,
)

SAMPLE_RATE = 16000


def quantised_noise(seconds: float, seed: int = 0) -> np.ndarray:
    """Noise already on the int16 grid, so FLAC PCM_16 must return it exactly."""
    rng = np.random.default_rng(seed)
    pcm = rng.integers(-32768, 32768, int(seconds * SAMPLE_RATE))
    return (pcm / 32768).astype(np.float32)


def tiny_samples(count: int, seconds: float = 0.25) -> list[tuple[str, np.ndarray, dict]]:
    return [
        (f"clip_{i:03d}", quantised_noise(seconds, seed=i), {"labels": ["a" if i % 2 else "b"]})
        for i in range(count)
    ]


def test_encode_decode_round_trip_is_bit_exact():
    audio = quantised_noise(0.5)
    audio[:2] = [-1.0, 32767 / 32768]  # both ends of the int16 range

    decoded, sample_rate = decode_audio(encode_flac(audio, SAMPLE_RATE))

    assert sample_rate == SAMPLE_RATE
    assert decoded.dtype == np.float32
    assert decoded.shape == audio.shape
    np.testing.assert_array_equal(decoded, audio)


def test_encode_flac_clips_out_of_range_values():
    decoded, _ = decode_audio(encode_flac(np.array([2.0, -3.0, 0.5], np.float32), SAMPLE_RATE))

    np.testing.assert_array_equal(decoded, [32767 / 32768, -1.0, 0.5])


@pytest.mark.parametrize(
    ("audio", "message"),
    [(np.array([0.1, np.nan]), "NaN"), (np.zeros(0), "non-empty"), (np.zeros((2, 4)), "mono")],
)
def test_encode_flac_rejects_nan_empty_and_multichannel(audio, message):
    with pytest.raises(ValueError, match=message):
        encode_flac(audio, SAMPLE_RATE)


def test_decode_audio_downmixes_stereo_by_mean():
    left, right = quantised_noise(0.1, seed=1), quantised_noise(0.1, seed=2)
    buffer = io.BytesIO()
    sf.write(buffer, np.stack([left, right], axis=1), 8000, format="WAV", subtype="FLOAT")

    decoded, sample_rate = decode_audio(buffer.getvalue())

    assert sample_rate == 8000
    np.testing.assert_allclose(decoded, (left + right) / 2, atol=1e-7)


def test_decode_audio_raises_value_error_on_nan_and_garbage():
    buffer = io.BytesIO()
    sf.write(buffer, np.array([0.0, np.inf, 0.1], np.float32), 8000, format="WAV", subtype="FLOAT")

    with pytest.raises(ValueError, match="NaN or Inf"):
        decode_audio(buffer.getvalue())
    with pytest.raises(ValueError, match="cannot decode"):
        decode_audio(b"definitely not audio" * 10)


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ("rock/rock.00001.wav", "rock_rock_00001"),
        ("Artist - Song (live).MP3", "Artist_-_Song__live"),
        ("/data/a b/c.flac", "data_a_b_c"),
        ("track.v2", "track_v2"),
        ("already_ok-1", "already_ok-1"),
    ],
)
def test_sanitize_key(text, key):
    assert sanitize_key(text) == key


def test_sanitize_key_rejects_empty_result():
    with pytest.raises(ValueError, match="cannot make"):
        sanitize_key("/../.../")


def test_shard_name_round_trips_through_parse():
    assert shard_name("gtzan", "train", 3) == "gtzan-train-000003.tar"
    assert parse_shard_name("my-set-valid-p002-000010.tar", "my-set") == ("valid", 2, 10)
    assert parse_shard_name("my-set-valid-000010.tar", "my-set") == ("valid", None, 10)
    assert parse_shard_name("other-valid-000010.tar", "my-set") is None
    assert parse_shard_name("my-set-valid-000010.tar.tmp", "my-set") is None


def test_write_shards_round_trips_audio_and_meta(tmp_path):
    samples = tiny_samples(5)
    samples[0][2]["targets"] = [0.5, -1.0]

    split = write_shards(samples, tmp_path, "tiny", "train", SAMPLE_RATE)

    assert split.num_samples == 5
    assert split.shards == ["tiny-train-000000.tar"]
    assert split.seconds == pytest.approx(5 * 0.25)
    read = list(iter_shard(tmp_path / split.shards[0]))
    assert [sample["key"] for sample in read] == [key for key, _, _ in samples]
    for (key, audio, meta), sample in zip(samples, read, strict=True):
        decoded, sample_rate = decode_audio(sample["flac"])
        np.testing.assert_array_equal(decoded, audio)
        assert sample_rate == SAMPLE_RATE
        assert sample["json"]["key"] == sample["json"]["track_id"] == key
        assert sample["json"]["split"] == "train"
        assert sample["json"]["labels"] == meta["labels"]
        assert sample["json"]["duration"] == pytest.approx(0.25)
    assert read[0]["json"]["targets"] == [0.5, -1.0]
    assert read_shard_meta(tmp_path / split.shards[0]) == [sample["json"] for sample in read]


def test_write_dataset_and_info_round_trip(tmp_path):
    info = write_dataset(
        tmp_path,
        "tiny",
        {"train": tiny_samples(5), "valid": tiny_samples(2)},
        SAMPLE_RATE,
        task="multiclass",
        max_samples=2,
    )

    assert read_info(tmp_path) == info
    assert DatasetInfo.from_dict(json.loads(json.dumps(info.to_dict()))) == info
    assert info.vocabulary == ["a", "b"]
    assert info.splits["train"] == SplitInfo(
        5, 1.25, [f"tiny-train-{i:06d}.tar" for i in range(3)], [2, 2, 1]
    )
    assert info.total_seconds == pytest.approx(1.75)
    paths = shard_paths(tmp_path, "valid")
    assert paths == [str(tmp_path.resolve() / "tiny-valid-000000.tar")]
    assert Path(paths[0]).is_file()
    assert not list(tmp_path.glob("*.tmp"))


def test_read_info_errors_name_the_path(tmp_path):
    with pytest.raises(FileNotFoundError, match=str(tmp_path / "info.json")):
        read_info(tmp_path)
    (tmp_path / "info.json").write_text('{"format_version": 1, "dataset": "x"}')
    with pytest.raises(ValueError, match=rf"{tmp_path / 'info.json'}.*missing field"):
        read_info(tmp_path)
    (tmp_path / "info.json").write_text("{not json")
    with pytest.raises(ValueError, match=str(tmp_path / "info.json")):
        read_info(tmp_path)


def test_shard_paths_unknown_split_names_available_ones(tmp_path):
    write_dataset(
        tmp_path, "tiny", {"train": tiny_samples(1), "valid": tiny_samples(1)}, SAMPLE_RATE
    )

    with pytest.raises(ValueError, match=r"'test'.*available: train, valid"):
        shard_paths(tmp_path, "test")


def test_write_info_is_atomic_and_leaves_no_temp_file(tmp_path):
    info = DatasetInfo("x", SAMPLE_RATE, "none", [], {"train": SplitInfo(0, 0.0)}, 0.0)

    write_info(tmp_path, info)

    assert [path.name for path in tmp_path.iterdir()] == ["info.json"]


def test_unclosed_writer_leaves_only_a_temp_file(tmp_path):
    writer = ShardWriter(tmp_path, "tiny", "train")
    for key, audio, meta in tiny_samples(3):
        writer.write(key, encode_flac(audio, SAMPLE_RATE), {**meta, "duration": 0.25})

    # as after kill -9: nothing with a final shard name exists
    assert not list(tmp_path.glob("*.tar"))
    assert [path.name for path in tmp_path.iterdir()] == ["tiny-train-000000.tar.tmp"]
    writer.abort()
    assert not list(tmp_path.iterdir())


def test_exception_inside_writer_keeps_finished_shards_and_drops_open_one(tmp_path):
    writer = ShardWriter(tmp_path, "t", "train", max_samples=2)

    def write_then_fail():
        with writer:
            for key, audio, meta in tiny_samples(3):
                writer.write(key, encode_flac(audio, SAMPLE_RATE), {**meta, "duration": 0.25})
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        write_then_fail()

    assert sorted(path.name for path in tmp_path.iterdir()) == ["t-train-000000.tar"]
    assert writer.shard_num_samples == [2]


def test_size_bound_splits_shards(tmp_path):
    samples = tiny_samples(10, seconds=0.5)  # noise: ~16 KB of FLAC each

    split = write_shards(samples, tmp_path, "tiny", "train", SAMPLE_RATE, max_bytes=60_000)

    assert len(split.shards) > 2
    assert sum(split.shard_num_samples) == 10
    for name in split.shards:
        assert (tmp_path / name).stat().st_size <= 60_000
    keys = [sample["key"] for name in split.shards for sample in iter_shard(tmp_path / name)]
    assert keys == [key for key, _, _ in samples]


def test_sample_bigger_than_bound_gets_its_own_shard(tmp_path):
    split = write_shards(
        tiny_samples(3, seconds=1.0), tmp_path, "tiny", "train", SAMPLE_RATE, max_bytes=1000
    )

    assert split.shard_num_samples == [1, 1, 1]


def test_writer_rejects_bad_keys_duplicates_and_bad_meta(tmp_path):
    flac = encode_flac(quantised_noise(0.1), SAMPLE_RATE)
    with ShardWriter(tmp_path, "tiny", "train") as writer:
        writer.write("a", flac, {"labels": [], "duration": 0.1})
        with pytest.raises(ValueError, match="duplicate key"):
            writer.write("a", flac, {"labels": [], "duration": 0.1})
        with pytest.raises(ValueError, match="sanitize_key"):
            writer.write("a.b", flac, {"labels": [], "duration": 0.1})
        with pytest.raises(ValueError, match="duration"):
            writer.write("b", flac, {"labels": []})
        with pytest.raises(ValueError, match="split"):
            writer.write("c", flac, {"labels": [], "duration": 0.1, "split": "test"})
        with pytest.raises(ValueError, match="JSON compliant"):
            writer.write("d", flac, {"labels": [], "duration": 0.1, "targets": [float("nan")]})


def test_writer_refuses_to_overwrite_a_shard(tmp_path):
    write_shards(tiny_samples(1), tmp_path, "tiny", "train", SAMPLE_RATE)

    with pytest.raises(FileExistsError, match=r"tiny-train-000000\.tar"):
        write_shards(tiny_samples(1), tmp_path, "tiny", "train", SAMPLE_RATE)


def add_member(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    tar.addfile(info, io.BytesIO(data))


class CreatesFileWhenUnpickled:
    def __init__(self, path: Path):
        self.path = str(path)

    def __reduce__(self):
        return (open, (self.path, "w"))


def test_pickle_members_are_never_unpickled(tmp_path):
    marker = tmp_path / "unpickled"
    shard = tmp_path / "evil-train-000000.tar"
    flac = encode_flac(quantised_noise(0.1), SAMPLE_RATE)
    with tarfile.open(shard, "w") as tar:
        add_member(tar, "x.flac", flac)
        add_member(tar, "x.json", b'{"key": "x", "labels": []}')
        add_member(tar, "x.pyd", pickle.dumps(CreatesFileWhenUnpickled(marker)))
        add_member(tar, "y.pickle", pickle.dumps(CreatesFileWhenUnpickled(marker)))

    samples = list(iter_shard(shard))
    raw = list(wds.WebDataset([str(shard)], shardshuffle=False, empty_check=False))

    assert not marker.exists()
    assert [(s["key"], sorted(s)) for s in samples] == [("x", ["flac", "json", "key"])]
    assert isinstance(raw[0]["pyd"], bytes)  # webdataset without .decode() keeps raw bytes
    assert not marker.exists()


@pytest.mark.parametrize(
    ("members", "message"),
    [
        ({"x.flac": b"audio"}, r"'x' lacks json"),
        ({"x.flac": b"audio", "x.json": b"{broken"}, r"'x' has invalid JSON"),
        (
            {"x.flac": b"a", "x.json": b"{}", "y.json": b"{}", "x.pyd": b"", "x.txt": b""},
            r"'y' lacks flac",
        ),
    ],
)
def test_malformed_sample_error_names_shard_and_key(tmp_path, members, message):
    shard = tmp_path / "bad-train-000000.tar"
    with tarfile.open(shard, "w") as tar:
        for name, data in members.items():
            add_member(tar, name, data)

    with pytest.raises(ValueError, match=rf"bad-train-000000\.tar: sample {message}"):
        list(iter_shard(shard))


def test_truncated_shard_raises_value_error(tmp_path):
    split = write_shards(tiny_samples(2), tmp_path, "tiny", "train", SAMPLE_RATE)
    shard = tmp_path / split.shards[0]
    shard.write_bytes(shard.read_bytes()[:700])

    with pytest.raises(ValueError, match=r"tiny-train-000000\.tar"):
        list(iter_shard(shard))


def test_webdataset_groups_flac_and_json_by_key(tmp_path):
    info = write_dataset(tmp_path, "tiny", {"train": tiny_samples(5)}, SAMPLE_RATE, max_samples=2)

    dataset = wds.WebDataset(shard_paths(tmp_path, "train"), shardshuffle=False)
    samples = list(dataset)

    assert len(samples) == info.splits["train"].num_samples
    for sample, (key, audio, _) in zip(samples, tiny_samples(5), strict=True):
        assert sample["__key__"] == key
        assert json.loads(sample["json"])["key"] == key
        np.testing.assert_array_equal(decode_audio(sample["flac"])[0], audio)
