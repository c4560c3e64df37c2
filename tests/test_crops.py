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
