"""Every format a catalog holds: libsndfile's by content, MP4/WebM through PyAV (the extra)."""

import json
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from data_prep import shard, verify
from lit_mrl.embed.sources import open_input
from lit_mrl.formats import ffmpeg
from lit_mrl.formats.audio import AudioError, iter_resampled, load_audio, read_resampled
from lit_mrl.formats.containers import sniff, worth_decoding
from lit_mrl.formats.shards import decode_audio, iter_shard, sanitize_key

av = pytest.importorskip("av")  # the ffmpeg extra; the dev extra installs it

RATE = 48000  # Opus codes at 48 kHz only; AAC's priming is then a whole number of samples
# (name, soundfile format, subtype) of the formats libsndfile writes
LIBSNDFILE_FILES = [
    ("wav", "WAV", "PCM_16"),
    ("flac", "FLAC", "PCM_16"),
    ("ogg", "OGG", "VORBIS"),
    ("opus", "OGG", "OPUS"),
    ("oga", "OGG", "VORBIS"),
    ("mp3", "MP3", "MPEG_LAYER_III"),
    ("au", "AU", "PCM_16"),
    ("aiff", "AIFF", "PCM_16"),
]
# (extension, PyAV codec) of what downloaders produce
FFMPEG_FILES = [("m4a", "aac"), ("webm", "libopus")]
ALL_KEYS = sorted(f"{ext}_track" for ext, *_ in LIBSNDFILE_FILES + FFMPEG_FILES)


def music(seconds: float = 1.0, channels: int = 2) -> np.ndarray:
    """float32 ``(T, channels)`` at RATE: a chirp (one cross-correlation peak) over two tones."""
    t = np.arange(int(seconds * RATE)) / RATE
    noise = 0.01 * np.random.default_rng(0).standard_normal((len(t), channels))
    tones = 0.1 * np.sin(2 * np.pi * np.outer(t, [331.7, 467.7][:channels]))
    chirp = 0.25 * np.sin(2 * np.pi * (200 * t + 900 * t**2))[:, None]
    return (chirp + tones + noise).astype(np.float32)


def encode_with_pyav(path: Path, audio: np.ndarray, codec: str, fmt: str | None = None) -> Path:
    """Encode ``(T, 2)`` float audio at RATE with FFmpeg; the container follows the extension."""
    with av.open(str(path), "w", format=fmt) as container:
        stream = container.add_stream(codec, rate=RATE)
        stream.layout = "stereo"
        frame = av.AudioFrame.from_ndarray(
            np.ascontiguousarray(audio.T), format="fltp", layout="stereo"
        )
        frame.sample_rate = RATE
        for packet in [*stream.encode(frame), *stream.encode(None)]:
            container.mux(packet)
    return path


def write_reference_flac(folder: Path, audio: np.ndarray) -> Path:
    sf.write(folder / "reference.flac", audio, RATE)
    return folder / "reference.flac"


def aligned_snr(reference: np.ndarray, decoded: np.ndarray, max_lag: int = 4096) -> float:
    """SNR in dB of ``decoded`` against ``reference`` after the best delay in [0, max_lag)."""
    ref = reference[max_lag // 2 : -max_lag]  # clear of the codec's fade-in and padding
    scores = np.correlate(decoded[: len(ref) + max_lag], ref, mode="valid")
    start = int(np.argmax(scores))
    error = ref - decoded[start : start + len(ref)]
    return float(10 * np.log10(np.sum(ref**2) / np.sum(error**2)))


def make_catalog(root: Path) -> Path:
    """One file of each format, plus a cover and notes a folder scan must leave alone."""
    root.mkdir(parents=True)
    audio = music()
    for ext, fmt, subtype in LIBSNDFILE_FILES:
        sf.write(root / f"{ext}_track.{ext}", audio, RATE, format=fmt, subtype=subtype)
    for ext, codec in FFMPEG_FILES:
        encode_with_pyav(root / f"{ext}_track.{ext}", audio, codec)
    (root / "notes.txt").write_text("liner notes\n")
    (root / "cover.jpg").write_bytes(b"\xff\xd8\xff\xe0\x00\x10JFIF\x00" + bytes(200))
    return root


@pytest.fixture(scope="module")
def catalog(tmp_path_factory) -> Path:
    return make_catalog(tmp_path_factory.mktemp("catalog") / "in")


def shard_folder(folder: Path, out: Path) -> int:
    return shard.main(["--input", str(folder), "--out", str(out), "--workers", "0"])


def read_errors(out: Path) -> dict[str, str]:
    rows = map(json.loads, (out / "errors.jsonl").read_text().splitlines())
    return {Path(row["path"]).name: row["reason"] for row in rows}


@pytest.mark.parametrize(("ext", "codec"), FFMPEG_FILES)
def test_an_aac_or_opus_encode_decodes_to_the_flacs_pcm(tmp_path, ext, codec):
    audio = music()
    encode_with_pyav(tmp_path / f"a.{ext}", audio, codec)

    from_flac = load_audio(write_reference_flac(tmp_path, audio), RATE)
    decoded = load_audio(tmp_path / f"a.{ext}", RATE)

    assert decoded.dtype == np.float32
    assert np.array_equal(decoded * 32768, np.rint(decoded * 32768))  # the PCM_16 grid
    # AAC adds its 1024-sample priming and pads to a 1024-sample frame; Opus trims its own
    assert 0 <= len(decoded) - len(from_flac) <= 2048 + 1024
    # both codecs keep this tonal test signal 30-40 dB clean; a wrong channel, rate,
    # sample scale or a missing downmix falls far below 20 dB
    assert aligned_snr(from_flac, decoded) > 20


def test_every_format_of_a_catalog_folder_shards(catalog, tmp_path, capsys):
    out = tmp_path / "out"

    assert shard_folder(catalog, out) == 0

    report = verify.verify(out)
    assert report.problems == []
    assert sorted(report.keys) == ALL_KEYS  # notes.txt and cover.jpg are not inputs
    assert "skipped 2 files that are not audio (cover.jpg, notes.txt)" in capsys.readouterr().out
    assert (out / "errors.jsonl").read_text() == ""
    for path in out.glob("*.tar"):
        for sample in iter_shard(path):
            audio, sample_rate = decode_audio(sample["flac"])
            # MP3 and AAC add up to two frames of padding
            assert len(audio) / sample_rate == pytest.approx(1.0, abs=0.07), sample["key"]
            assert np.abs(audio).max() > 0.1, sample["key"]


def test_without_the_extra_mp4_and_webm_are_reported_naming_it(catalog, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "av", None)  # `import av` raises ImportError
    out = tmp_path / "out"

    assert shard_folder(catalog, out) == 1  # the others are sharded, these two listed

    assert read_errors(out) == {
        "m4a_track.m4a": "unsupported container mp4: install lit_mrl[ffmpeg]",
        "webm_track.webm": "unsupported container webm: install lit_mrl[ffmpeg]",
    }
    assert sorted(verify.verify(out).keys) == sorted(set(ALL_KEYS) - {"m4a_track", "webm_track"})


def test_a_manifest_entry_is_decided_by_content_not_name(tmp_path):
    sf.write(tmp_path / "take1.dat", music(0.5), RATE, format="WAV")
    (tmp_path / "fake.mp3").write_text("lyrics, not a song\n" * 20)
    encode_with_pyav(tmp_path / "download.bin", music(0.5), "aac", "mp4")  # MP4 named .bin
    rows = [{"path": name} for name in ("take1.dat", "fake.mp3", "download.bin")]
    (tmp_path / "m.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))
    out = tmp_path / "out"

    assert shard.main(["--manifest", str(tmp_path / "m.jsonl"), "--out", str(out), "--workers", "0"]) == 1  # fmt: skip

    assert sorted(verify.verify(out).keys) == ["download_bin", "take1_dat"]
    assert read_errors(out) == {"fake.mp3": "not audio (starts like a text file)"}


def test_a_folder_scan_finds_audio_by_extension_or_first_bytes(tmp_path):
    sf.write(tmp_path / "track01", music(0.2), RATE, format="WAV")  # no extension
    sf.write(tmp_path / "b.CAF", music(0.2), RATE, format="CAF")
    (tmp_path / "notes.txt").write_text("liner notes\n")
    (tmp_path / "cover.jpg").write_bytes(b"\xff\xd8\xff\xe0" + bytes(100))
    (tmp_path / "blob.bin").write_bytes(bytes(range(256)))

    found = sorted(path.name for path in tmp_path.iterdir() if worth_decoding(path))
    files = open_input(tmp_path).files  # embed on a folder: the same rule

    assert found == ["b.CAF", "track01"]
    assert [key for key, _ in files] == ["b.CAF", "track01"]


def test_embed_file_list_decides_each_line_by_content(catalog, tmp_path):
    lines = ["in/m4a_track.m4a", "in/au_track.au", "in/notes.txt"]
    (catalog.parent / "list.txt").write_text("\n".join(lines) + "\n")

    files = open_input(catalog.parent / "list.txt").files

    assert [key for key, _ in files] == lines  # notes.txt is listed, so the decoder judges it
    with pytest.raises(AudioError, match="not audio"):
        load_audio(files[2][1], 16000)


def test_pyav_blocks_are_bounded_and_match_the_whole_file(catalog):
    path = catalog / "m4a_track.m4a"

    with ffmpeg.open_blocks(path, None, 4096) as (rate, decoded):
        sizes = [block.shape for block in decoded]
    blocks = list(iter_resampled(path, 16000, block_frames=4096))

    assert rate == RATE
    assert all(shape == (4096, 2) for shape in sizes[:-1])  # memory bounded by the block
    assert 0 < sizes[-1][0] <= 4096
    assert np.array_equal(np.concatenate(blocks), read_resampled(path, 16000))
    assert len(load_audio(path, 16000, max_seconds=0.25)) == 4000


def test_what_libsndfile_rejects_falls_back_to_ffmpeg(tmp_path, monkeypatch):
    path = encode_with_pyav(tmp_path / "ac3.wav", music(), "ac3", "wav")  # WAV, AC-3 inside
    with pytest.raises(sf.LibsndfileError):
        sf.info(path)

    decoded = load_audio(path, RATE)

    assert aligned_snr(load_audio(write_reference_flac(tmp_path, music()), RATE), decoded) > 20
    monkeypatch.setitem(sys.modules, "av", None)
    with pytest.raises(AudioError, match=r"starts like WAV; libsndfile: .*; FFmpeg not tried: install lit_mrl\[ffmpeg\]\)$"):  # fmt: skip
        load_audio(path, RATE)


def test_nan_from_an_ffmpeg_container_is_reported(tmp_path):
    audio = music(0.2, channels=1)
    audio[100] = np.nan
    path = tmp_path / "nan.mka"  # raw float PCM in Matroska: only FFmpeg reads it
    with av.open(str(path), "w") as container:
        stream = container.add_stream("pcm_f32le", rate=RATE)
        stream.layout = "mono"
        frame = av.AudioFrame.from_ndarray(audio.T.copy(), format="flt", layout="mono")
        frame.sample_rate = RATE
        for packet in [*stream.encode(frame), *stream.encode(None)]:
            container.mux(packet)

    with pytest.raises(AudioError, match=r"nan\.mka: audio contains NaN or Inf$"):
        load_audio(path, 16000)


@pytest.mark.parametrize(
    ("head", "name", "decoder"),
    [
        (b"\x00\x00\x00\x1cftypM4A \x00\x00\x02\x00", "mp4", "FFmpeg"),
        (b"\x1a\x45\xdf\xa3\x9fB\x86\x81\x01B\xf7\x81\x01B\xf2\x81\x04B\x82\x84webm", "webm", "FFmpeg"),
        (b"\xff\xf1\x50\x80", "aac", "FFmpeg"),
        (b"\xff\xfb\x90\x64", "MPEG audio", "libsndfile"),
        (b".snd\x00\x00\x00\x18", "AU", "libsndfile"),
        (b"OggS\x00\x02", "Ogg", "libsndfile"),
    ],
)  # fmt: skip
def test_sniff_names_the_container_and_its_decoder(head, name, decoder):
    assert sniff(head) == (name, decoder)


def test_sanitize_key_drops_every_audio_extension():
    assert sanitize_key("rock/rock.00001.au") == "rock_rock_00001"
    assert sanitize_key("yt/abc.M4A") == "yt_abc"
    assert sanitize_key("take1.dat") == "take1_dat"  # not an audio extension: kept
