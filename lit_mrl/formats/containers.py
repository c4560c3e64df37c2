"""What a file is: audio extensions for folder scans, leading bytes for everything else.

A file's content decides how it is decoded (:mod:`lit_mrl.formats.audio`): libsndfile
first, FFmpeg (:mod:`lit_mrl.formats.ffmpeg`, the optional ``lit_mrl[ffmpeg]`` extra) for
the containers libsndfile does not read. Extensions only choose which files of a
folder are worth opening, so a scan never decodes ``README.txt`` or ``cover.jpg``;
a file named in a manifest or a file list is decided by its content alone.
No torch here: data preparation imports this.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Literal, NamedTuple

SNIFF_BYTES = 512

# soundfile.available_formats() by extension (MAT4/MAT5 and RAW left out: .mat is
# rarely audio, and headerless RAW needs its rate and encoding given by hand)
LIBSNDFILE_EXTENSIONS = (
    ".wav", ".wave", ".bwf", ".flac", ".ogg", ".oga", ".opus", ".mp3", ".mp2", ".mp1",
    ".aiff", ".aif", ".aifc", ".au", ".snd", ".caf", ".w64", ".rf64", ".voc", ".nist",
    ".sph", ".ircam", ".sf", ".paf", ".svx", ".8svx", ".xi", ".avr", ".htk", ".sds",
    ".sd2", ".pvf", ".wve",
)  # fmt: skip
# what downloaders and catalogs hold besides: AAC/ALAC in MP4, Opus/Vorbis in WebM, ...
FFMPEG_EXTENSIONS = (
    ".m4a", ".m4b", ".mp4", ".aac", ".adts", ".3gp", ".mov", ".webm", ".mkv", ".mka",
    ".wma", ".asf", ".ac3", ".eac3", ".dts", ".amr", ".ape", ".wv", ".tta", ".mpc",
    ".dsf",
)  # fmt: skip
AUDIO_EXTENSIONS = LIBSNDFILE_EXTENSIONS + FFMPEG_EXTENSIONS


class Container(NamedTuple):
    """An audio container recognised by its first bytes.

    Args:
        name: for messages (``"FLAC"``, ``"mp4"``: FFmpeg's own name for its formats).
        decoder: the library that reads it.
    """

    name: str
    decoder: Literal["libsndfile", "FFmpeg"]


def _table(
    *rows: tuple[bytes, str], flags: int = re.S
) -> tuple[tuple[re.Pattern[bytes], str], ...]:
    return tuple((re.compile(pattern, flags), name) for pattern, name in rows)


# first match wins: ADTS (MPEG-2/4 AAC, layer bits 00) before MPEG audio layers I-III
_LIBSNDFILE_MAGIC = _table(
    (rb"(RIFF|RIFX)....WAVE", "WAV"),
    (rb"(RF64|BW64)....WAVE", "RF64"),
    (rb"riff\x2e\x91\xcf\x11", "W64"),
    (rb"fLaC", "FLAC"),
    (rb"OggS", "Ogg"),
    (rb"FORM....AIF[FC]", "AIFF"),
    (rb"\.snd|dns\.", "AU"),
    (rb"caff", "CAF"),
    (rb"Creative Voice File", "VOC"),
    (rb"NIST_1A", "NIST SPHERE"),
)
_FFMPEG_MAGIC = _table(
    (rb"....ftyp|....moov", "mp4"),
    (rb"\x1a\x45\xdf\xa3.{0,40}webm", "webm"),
    (rb"\x1a\x45\xdf\xa3", "matroska"),
    (rb"\xff[\xf0\xf1\xf8\xf9]", "aac"),  # ADTS
    (rb"\x30\x26\xb2\x75\x8e\x66\xcf\x11", "asf"),
    (rb"\x0b\x77", "ac3"),
    (rb"\x7f\xfe\x80\x01", "dts"),
    (rb"#!AMR", "amr"),
    (rb"MAC ", "ape"),
    (rb"wvpk", "wv"),
    (rb"TTA1", "tta"),
    (rb"MPCK|MP\+", "mpc"),
    (rb"DSD ", "dsf"),
)
_MPEG_MAGIC = re.compile(rb"ID3|\xff[\xe0-\xff]")  # tried after ADTS
# (magic test, what it looks like) for common files that are not audio
_OTHER_MAGIC = _table(
    (rb"\s*(<!doctype html|<html|<head|<body)", "an HTML page"),
    (rb"\s*<\?xml", "an XML file"),
    (rb"PK\x03\x04|PK\x05\x06", "a zip archive"),
    (rb"\x1f\x8b", "a gzip archive"),
    (rb"%PDF-", "a PDF document"),
    (rb"\x7fELF", "a program (ELF)"),
    (rb"\xff\xd8\xff", "a JPEG image"),
    (rb"\x89PNG", "a PNG image"),
    (rb"\x00\x05\x16\x07", "a macOS AppleDouble file (._name)"),
    flags=re.S | re.I,
)
_TEXT_CONTROL = set(range(32)) - {9, 10, 12, 13}


def sniff(head: bytes) -> Container | None:
    """The audio container ``head`` (a file's first bytes) starts like, or None."""
    for magic, name in _LIBSNDFILE_MAGIC:
        if magic.match(head):
            return Container(name, "libsndfile")
    for magic, name in _FFMPEG_MAGIC:
        if magic.match(head):
            return Container(name, "FFmpeg")
    if _MPEG_MAGIC.match(head):
        return Container("MPEG audio", "libsndfile")
    return None


def looks_like_other(head: bytes) -> str | None:
    """What a file that is certainly not audio starts like (``"a text file"``), else None."""
    for magic, what in _OTHER_MAGIC:
        if magic.match(head):
            return what
    if head.startswith(b"\xef\xbb\xbf") or _is_text(head):
        return "a text file"
    return None


def _is_text(head: bytes) -> bool:
    # every audio container has binary header bytes within its first few bytes
    if any(byte in _TEXT_CONTROL for byte in head):
        return False
    try:
        head.decode("utf-8")
    except UnicodeDecodeError as err:
        return err.start >= len(head) - 3  # a character cut at the end of the sniffed bytes
    return True


def worth_decoding(path: Path) -> bool:
    """Whether a folder scan should hand ``path`` to the decoder.

    True for an audio extension (:data:`AUDIO_EXTENSIONS`, any case); otherwise for a
    file whose first bytes are an audio container's (``track01`` holding WAV), so
    ``notes.txt`` and ``cover.jpg`` are skipped, not reported as broken audio.
    """
    if path.suffix.lower() in AUDIO_EXTENSIONS:
        return True
    try:
        with open(path, "rb") as file:
            head = file.read(SNIFF_BYTES)
    except OSError:
        return False
    return looks_like_other(head) is None and sniff(head) is not None
