import numpy as np
import pytest

from lit_mrl.data.crops import center_crop, paired_crops, random_crop


@pytest.fixture
def rng():
    return np.random.default_rng(0)


def test_random_crop_is_a_window_of_the_track(rng):
    audio = np.arange(1000, dtype=np.float32)
    crop = random_crop(audio, 300, rng)
    assert crop.shape == (300,)
    np.testing.assert_array_equal(np.diff(crop), 1.0)  # contiguous samples of the track


def test_short_tracks_are_padded_not_dropped(rng):
    audio = np.ones(100, dtype=np.float32)
    for crop in (random_crop(audio, 300, rng), center_crop(audio, 300)):
        assert crop.shape == (300,)
        assert crop.sum() == 100
    a, b = paired_crops(audio, 300, 50, rng)
    assert a.shape == b.shape == (300,)


def test_center_crop_is_deterministic_and_centred():
    audio = np.arange(1000, dtype=np.float32)
    crop = center_crop(audio, 300)
    assert crop[0] == 350
    np.testing.assert_array_equal(crop, center_crop(audio, 300))


def test_paired_crop_centres_within_max_offset(rng):
    audio = np.arange(100_000, dtype=np.float32)
    offsets = []
    for _ in range(500):
        a, b = paired_crops(audio, 3000, max_offset=5000, rng=rng)
        assert a.shape == b.shape == (3000,)
        offsets.append(abs(int(a[0]) - int(b[0])))
    assert max(offsets) <= 5000
    assert max(offsets) > 4000  # the whole allowed range is used
    assert min(offsets) < 500


def test_seek_reads_from_a_shard_equal_cropping_the_decoded_track(tmp_path):
    """Reading only a crop's frames (from disk, by seeking) gives the exact samples."""
    from lit_mrl.data.crops import paired_spans, random_span, read_crops, read_spans
    from lit_mrl.formats.shard_writer import write_dataset
    from lit_mrl.formats.shards import decode_audio, iter_shard

    rng = np.random.default_rng(0)
    track = (np.round(rng.uniform(-0.4, 0.4, 95 * 16000) * 32767) / 32768).astype(np.float32)
    write_dataset(tmp_path, "long", {"train": [("t", track, {})]}, 16000)
    (sample,) = iter_shard(next(tmp_path.glob("*.tar")), audio="ref")
    whole, _ = decode_audio(next(iter_shard(next(tmp_path.glob("*.tar"))))["flac"])
    for seed in range(5):
        spans = list(paired_spans(len(whole), 48000, 80000, np.random.default_rng(seed)))
        spans.append(random_span(len(whole), 48000, np.random.default_rng(seed)))
        for span, crop in zip(spans, read_spans(sample["flac"], spans, 48000), strict=True):
            np.testing.assert_array_equal(crop, whole[span.start : span.stop])
    (short,) = read_crops(
        sample["flac"], 20 * 16000 * 10, lambda n, rate: [random_span(n, 20 * 16000 * 10, rng)]
    )
    assert short.shape == (20 * 16000 * 10,)  # longer than the track: padded, not dropped
