"""The one audio loader: a file loaded directly equals its shard sample, bit for bit."""

import json

import numpy as np
import pytest
import soundfile as sf

from data_prep import shard
from lit_mrl.formats import shards
from lit_mrl.formats.audio import AudioError, decode_audio, load_audio, quantize_pcm16


def noisy_tone(sample_rate: int, seconds: float, channels: int = 1) -> np.ndarray:
    rng = np.random.default_rng(0)
    t = np.arange(int(sample_rate * seconds)) / sample_rate
    audio = 0.4 * np.sin(2 * np.pi * 330 * t)[:, None] + 0.05 * rng.standard_normal((len(t), 2))
    return audio[:, :channels].astype(np.float32)


def test_load_audio_equals_the_sharded_sample_bit_for_bit(tmp_path):
    path = tmp_path / "in" / "a.wav"
    path.parent.mkdir()
    sf.write(path, noisy_tone(22050, 0.3, channels=2), 22050, subtype="PCM_24")
    (tmp_path / "in" / "m.jsonl").write_text(json.dumps({"path": "a.wav"}) + "\n")
    out = tmp_path / "out"
    assert shard.main(["--manifest", str(tmp_path / "in" / "m.jsonl"), "--out", str(out),
                       "--workers", "0"]) == 0  # fmt: skip
    (sample,) = shards.iter_shard(next(out.glob("*.tar")))

    from_shard, sample_rate = decode_audio(sample["flac"])
    direct = load_audio(path, 16000)

    assert sample_rate == 16000
    assert direct.dtype == np.float32
    assert direct.shape == from_shard.shape == (round(0.3 * 16000),)
    assert np.array_equal(direct, from_shard)


def test_load_audio_averages_stereo_and_lands_on_the_pcm16_grid(tmp_path):
    stereo = np.round(noisy_tone(16000, 0.1, channels=2) * 32768) / 32768
    stereo[:, 1] = -0.25  # a constant right channel: the mean differs from either side
    sf.write(tmp_path / "s.wav", stereo, 16000, subtype="PCM_16")

    audio = load_audio(tmp_path / "s.wav", 16000)

    mean = stereo.mean(axis=1, dtype=np.float32)
    np.testing.assert_allclose(audio, mean, atol=0.5 / 32768)
    assert np.array_equal(audio * 32768, np.rint(audio * 32768))
    assert np.array_equal(audio, quantize_pcm16(mean) / np.float32(32768))


def test_load_audio_keeps_max_seconds(tmp_path):
    sf.write(tmp_path / "a.flac", noisy_tone(44100, 0.5), 44100)

    assert len(load_audio(tmp_path / "a.flac", 8000, max_seconds=0.25)) == 2000


@pytest.mark.parametrize(
    ("name", "content", "reason"),
    [
        ("text.mp3", b"just some notes, not a song\n" * 20, "not audio (starts like a text file)"),
        ("page.wav", b"<!DOCTYPE html><html><body>404</body></html>", "not audio (starts like an HTML page)"),
        ("bundle.flac", b"PK\x03\x04" + bytes(60), "not audio (starts like a zip archive)"),
        ("empty.wav", b"", "empty file (0 bytes)"),
        ("broken.flac", b"fLaC" + bytes(range(256)) * 4, "not decodable audio (starts like FLAC"),
        ("blob.ogg", bytes([0, 1, 2, 3, 250]) * 40, "not decodable audio (unknown binary format, starts 00 01 02 03"),
    ],
)  # fmt: skip
def test_load_audio_says_what_a_bad_file_is(tmp_path, name, content, reason):
    (tmp_path / name).write_bytes(content)

    with pytest.raises(AudioError) as caught:
        load_audio(tmp_path / name, 16000)

    assert str(caught.value).startswith(f"{tmp_path / name}: {reason}")
    assert caught.value.reason.startswith(reason)
    assert "does not exist" not in str(caught.value)
    assert isinstance(caught.value, ValueError)


def test_load_audio_missing_file_nan_and_zero_samples(tmp_path):
    with pytest.raises(AudioError, match=r"missing\.wav: file not found$"):
        load_audio(tmp_path / "missing.wav", 16000)

    nan = noisy_tone(16000, 0.1)
    nan[10] = np.nan
    sf.write(tmp_path / "nan.wav", nan, 16000, subtype="FLOAT")
    with pytest.raises(AudioError, match=r"nan\.wav: audio contains NaN or Inf"):
        load_audio(tmp_path / "nan.wav", 16000)

    sf.write(tmp_path / "none.wav", np.zeros(0, np.float32), 16000)
    with pytest.raises(AudioError, match=r"none\.wav: zero-length audio \(0 samples\)"):
        load_audio(tmp_path / "none.wav", 16000)


def test_encode_flac_rounds_like_quantize_pcm16():
    audio = np.array([0.5, -1.5, 2.0, 1e-6, -0.3], np.float32)

    decoded, _ = decode_audio(shards.encode_flac(audio, 8000))

    assert np.array_equal(decoded * 32768, quantize_pcm16(audio).astype(np.float32))
    assert shards.decode_audio is decode_audio  # the old import path still works
