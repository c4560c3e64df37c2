"""The one audio loader: every file, shard sample and folder of tracks is decoded here.

:func:`load_audio` gives exactly the samples that the sharder stores for a file, so a
track embedded straight from disk and the same track read back from its shard are
bit-identical: decode block by block, average the channels, resample once with a
streaming soxr resampler (``"HQ"``), and round to the PCM_16 grid
(:func:`quantize_pcm16`, the step :func:`lit_mrl.formats.shards.encode_flac` takes before
writing FLAC).

The file's content, not its name, picks the decoder (:mod:`lit_mrl.formats.containers`):
libsndfile (soundfile) for WAV, FLAC, Ogg Vorbis/Opus, MP3, AIFF, AU, CAF, W64, RF64,
...; FFmpeg through PyAV (:mod:`lit_mrl.formats.ffmpeg`, the ``lit_mrl[ffmpeg]`` extra)
for MP4/M4A, ADTS AAC, WebM/Matroska and whatever else libsndfile cannot open. Both
feed the same downmix, resampler, rounding and NaN/Inf check.

A file that cannot be used raises :class:`AudioError` (a ``ValueError``) whose message
names the file and says what it is instead: ``file not found``, ``empty file (0
bytes)``, ``not audio (starts like a text file)``, ``not decodable audio (starts like
FLAC; libsndfile: ...)``, ``unsupported container mp4: install lit_mrl[ffmpeg]`` and so
on. No torch here: data preparation imports this.
"""

from __future__ import annotations

import io
import re
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr

from lit_mrl.formats import ffmpeg
from lit_mrl.formats.containers import SNIFF_BYTES, looks_like_other, sniff

READ_BLOCK_FRAMES = 1 << 18  # about 6 s at 44.1 kHz: bounds memory on long tracks
PCM16_SCALE = 32768  # int16 full scale: k / 32768 for k in [-32768, 32767]
RESAMPLE_QUALITY = "HQ"


class AudioError(ValueError):
    """A file that cannot be used as audio.

    Args:
        path: the file.
        reason: what is wrong, without the path (``"empty file (0 bytes)"``).
    """

    def __init__(self, path: str | Path, reason: str) -> None:
        self.path, self.reason = Path(path), reason
        super().__init__(f"{path}: {reason}")


def quantize_pcm16(audio: np.ndarray) -> np.ndarray:
    """Round float audio to 16-bit PCM samples, as FLAC PCM_16 stores them.

    Values outside [-1, 1] are clipped; ``k / 32768`` maps back to ``k`` exactly.

    Args:
        audio: float samples, any shape, nominally in [-1, 1].

    Returns:
        int16 samples of the same shape: ``clip(rint(x * 32768), -32768, 32767)``.
    """
    # float32 keeps a 20-minute track small; k / 32768 * 32768 is exact in float32
    scaled = np.rint(np.multiply(audio, PCM16_SCALE, dtype=np.float32))
    return np.clip(scaled, -PCM16_SCALE, PCM16_SCALE - 1).astype(np.int16)


def pcm16_to_float(pcm: np.ndarray) -> np.ndarray:
    """int16 samples -> float32 ``k / 32768``, what libsndfile decodes PCM_16 to."""
    return pcm.astype(np.float32) / np.float32(PCM16_SCALE)


def load_audio(path: str | Path, sample_rate: int, max_seconds: float | None = None) -> np.ndarray:
    """Decode a file to float32 mono ``(T,)`` at ``sample_rate`` Hz, on the PCM_16 grid.

    The result equals, bit for bit, the audio of the file's shard sample written by
    ``python -m data_prep shard`` with the same ``--sample_rate`` and ``--max_seconds``.

    Args:
        path: any file libsndfile reads (WAV, FLAC, Ogg, MP3, AIFF, AU, ...) or, with
            the ``lit_mrl[ffmpeg]`` extra, FFmpeg does (M4A/MP4, AAC, WebM, ...).
        sample_rate: output rate in Hz.
        max_seconds: keep only the first ``max_seconds`` seconds of the file.

    Raises:
        AudioError: naming the file, if it is missing, empty, not audio, not
            decodable, has zero samples or contains NaN/Inf.
    """
    return pcm16_to_float(quantize_pcm16(read_resampled(path, sample_rate, max_seconds)))


def read_resampled(
    path: str | Path, sample_rate: int, max_seconds: float | None = None
) -> np.ndarray:
    """:func:`load_audio` before rounding to PCM_16: float32 mono ``(T,)``, may exceed [-1, 1].

    The sharder uses it to see clipping before :func:`quantize_pcm16` hides it.

    Raises:
        AudioError: as :func:`load_audio`.
    """
    audio = np.concatenate(list(iter_resampled(path, sample_rate, max_seconds)))
    if len(audio) == 0:  # a few input samples can resample to none
        raise AudioError(path, "zero-length audio after resampling")
    return audio


def iter_resampled(
    path: str | Path,
    sample_rate: int,
    max_seconds: float | None = None,
    block_frames: int = READ_BLOCK_FRAMES,
) -> Iterator[np.ndarray]:
    """:func:`read_resampled` a block at a time (memory bounded by the block, not the file).

    The concatenated blocks equal :func:`read_resampled`'s array exactly.

    Raises:
        AudioError: as :func:`load_audio` (possibly after some blocks were yielded).
    """
    path = Path(path)
    head = _read_head(path)
    other = looks_like_other(head)
    if other is not None:  # never handed to a decoder that would guess at it
        raise AudioError(path, f"not audio (starts like {other})")
    try:
        with ExitStack() as stack:
            rate, blocks = _open_blocks(path, head, max_seconds, block_frames, stack)
            yield from _mono_resampled(path, rate, blocks, sample_rate)
    except sf.SoundFileError as err:
        raise AudioError(path, _undecodable(head, _libsndfile_text(err, path))) from err
    except ffmpeg.NotDecoded as err:
        raise AudioError(path, _undecodable(head, None, str(err))) from err
    except OSError as err:
        raise AudioError(path, f"cannot read ({err.strerror or err})") from err


def iter_audio(
    path: str | Path, sample_rate: int, block_frames: int = READ_BLOCK_FRAMES
) -> Iterator[np.ndarray]:
    """:func:`load_audio` a block at a time: float32 on the PCM_16 grid, as the shards store it."""
    for block in iter_resampled(path, sample_rate, block_frames=block_frames):
        yield pcm16_to_float(quantize_pcm16(block))


def _open_blocks(
    path: Path, head: bytes, max_seconds: float | None, block_frames: int, stack: ExitStack
) -> tuple[int, Iterator[np.ndarray]]:
    """The file's rate in Hz and float32 ``(frames, channels)`` blocks, from the decoder that reads it.

    libsndfile first, unless the first bytes are a container only FFmpeg reads; FFmpeg
    when libsndfile cannot open the file (a WAV holding AC-3, ...).
    """
    container = sniff(head)
    libsndfile = None
    if container is None or container.decoder == "libsndfile":
        try:
            file = stack.enter_context(sf.SoundFile(path))
        except sf.SoundFileError as err:
            libsndfile = _libsndfile_text(err, path)
        else:
            frames = -1 if max_seconds is None else int(max_seconds * file.samplerate)
            blocks = file.blocks(block_frames, frames=frames, dtype="float32", always_2d=True)
            return file.samplerate, blocks
    try:
        return stack.enter_context(ffmpeg.open_blocks(path, max_seconds, block_frames))
    except ffmpeg.Missing:
        if libsndfile is None:  # a container libsndfile does not read
            raise AudioError(
                path, f"unsupported container {container.name}: install {ffmpeg.EXTRA}"
            ) from None
        raise AudioError(path, _undecodable(head, libsndfile, ffmpeg_missing=True)) from None
    except ffmpeg.NotDecoded as err:
        raise AudioError(path, _undecodable(head, libsndfile, str(err))) from err


def _mono_resampled(
    path: Path, rate: int, blocks: Iterator[np.ndarray], sample_rate: int
) -> Iterator[np.ndarray]:
    """Blocks ``(frames, channels)`` at ``rate`` -> float32 mono at ``sample_rate``, any decoder."""
    resampler = None
    if rate != sample_rate:
        resampler = soxr.ResampleStream(
            rate, sample_rate, 1, dtype="float32", quality=RESAMPLE_QUALITY
        )
    frames_read = 0
    for block in blocks:
        if not np.isfinite(block).all():
            raise AudioError(path, "audio contains NaN or Inf")
        mono = block.mean(axis=1, dtype=np.float32)  # (frames, channels) -> (frames,)
        frames_read += len(block)
        yield mono if resampler is None else resampler.resample_chunk(mono)
    if frames_read == 0:
        raise AudioError(path, "zero-length audio (0 samples)")
    if resampler is not None:
        yield resampler.resample_chunk(np.zeros(0, np.float32), last=True)


def _read_head(path: Path) -> bytes:
    try:
        with open(path, "rb") as file:
            head = file.read(SNIFF_BYTES)
    except FileNotFoundError:
        raise AudioError(path, "file not found") from None
    except IsADirectoryError:
        raise AudioError(path, "is a folder, not a file") from None
    except OSError as err:
        raise AudioError(path, f"cannot read ({err.strerror or err})") from err
    if not head:
        raise AudioError(path, "empty file (0 bytes)")
    return head


def _libsndfile_text(err: sf.SoundFileError, path: Path) -> str:
    # libsndfile's text repeats the path, and blames a "pipe" when mpg123 rejects a file
    message = str(err).removeprefix(f"Error opening {str(path)!r}: ").strip().rstrip(".")
    return "the decoder rejected the data" if "possibly a pipe" in message else message


def _undecodable(
    head: bytes,
    libsndfile: str | None,
    ffmpeg_text: str | None = None,
    ffmpeg_missing: bool = False,
) -> str:
    """``not decodable audio (starts like FLAC; libsndfile: ...; FFmpeg: ...)``."""
    container = sniff(head)
    if container is None:
        start = " ".join(f"{byte:02x}" for byte in head[:4])
        parts = [f"unknown binary format, starts {start}"]
    else:
        parts = [f"starts like {container.name}"]
    if libsndfile is not None:
        parts.append(f"libsndfile: {libsndfile}")
    if ffmpeg_text is not None:
        parts.append(f"FFmpeg: {ffmpeg_text}")
    elif ffmpeg_missing:
        parts.append(f"FFmpeg not tried: install {ffmpeg.EXTRA}")
    return f"not decodable audio ({'; '.join(parts)})"


def decode_audio(data: bytes) -> tuple[np.ndarray, int]:
    """Decode in-memory audio (a shard's FLAC) to float32 mono ``(T,)`` and its rate in Hz.

    Channels are averaged; no resampling, no rounding.

    Raises:
        ValueError: if the bytes are not decodable audio or contain NaN/Inf.
    """
    try:
        audio, sample_rate = sf.read(io.BytesIO(data), dtype="float32", always_2d=True)
    except sf.SoundFileError as err:
        other = looks_like_other(data[:SNIFF_BYTES])
        message = re.sub(r"^Error opening <[^>]*>: ", "", str(err))  # drops a BytesIO repr
        detail = "0 bytes" if not data else f"starts like {other}" if other else message
        raise ValueError(f"cannot decode audio: {detail}") from err
    mono = audio[:, 0] if audio.shape[1] == 1 else audio.mean(axis=1, dtype=np.float32)
    if not np.isfinite(mono).all():
        raise ValueError("audio contains NaN or Inf")
    return np.ascontiguousarray(mono), sample_rate
