"""The shard format, defined in one place.

A dataset is a folder of WebDataset tar shards plus an ``info.json``::

    shards/mycat/
        info.json
        mycat-train-000000.tar      # {key}.flac + {key}.json per sample
        mycat-train-000001.tar
        mycat-valid-000000.tar

Each sample is one track: ``{key}.flac`` (mono, PCM_16, at the dataset's
``sample_rate``) and ``{key}.json`` (``key``, ``track_id``, ``split``,
``duration`` in seconds, ``labels``, optionally ``targets`` and ``source``).
Shards and ``info.json`` are written to a temporary name, fsynced and renamed,
so a file with a final name is always complete.

Readers here use :mod:`tarfile` and look only at ``.flac`` and ``.json``
members with a safe key (``[A-Za-z0-9_-]+``); anything else in a shard
(``.pyd``, ``.pickle``, ``../x.flac``, ...) is skipped unread, because shards
may come from outside (``python -m data_prep.verify`` reports it).
"""

from __future__ import annotations

import io
import json
import os
import re
import tarfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal, NamedTuple

import numpy as np
import soundfile as sf

# decode_audio lives with the audio loader; re-exported here for existing imports
from lit_mrl.formats.audio import decode_audio as decode_audio
from lit_mrl.formats.audio import quantize_pcm16
from lit_mrl.formats.containers import AUDIO_EXTENSIONS

KEY_RE = re.compile(r"[A-Za-z0-9_-]+")
_UNSAFE_RE = re.compile(r"[^A-Za-z0-9_-]")
_SPLIT_RE = re.compile(r"[A-Za-z0-9_]+")
_DATASET_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")
# tar adds two zero blocks at the end and pads to a 10 KiB record
TAR_END_BYTES = 10240


def sanitize_key(text: str) -> str:
    """Turn a path or name into a WebDataset key.

    WebDataset splits member names at the first dot, so keys hold only
    ``[A-Za-z0-9_-]``: a trailing audio extension
    (:data:`~lit_mrl.formats.containers.AUDIO_EXTENSIONS`) is dropped, every other
    character becomes ``_``, and leading/trailing ``_`` are stripped (from
    absolute or ``../`` paths). ``"rock/rock.00001.wav"`` -> ``"rock_rock_00001"``.

    Raises:
        ValueError: if nothing usable is left.
    """
    stem = text
    suffix = Path(text).suffix
    if suffix.lower() in AUDIO_EXTENSIONS:
        stem = text[: -len(suffix)]
    key = _UNSAFE_RE.sub("_", stem).strip("_")
    if not key:
        raise ValueError(f"cannot make a shard key from {text!r}")
    return key


def encode_flac(audio: np.ndarray, sample_rate: int) -> bytes:
    """Encode mono float audio ``(T,)`` in [-1, 1] as FLAC PCM_16 bytes.

    Values outside [-1, 1] are clipped. Quantisation is :func:`quantize_pcm16`
    (``round(x * 32768)``), so audio already on the int16 grid (``k / 32768``)
    decodes back bit-exactly.

    Raises:
        ValueError: for non-1-D, empty or non-finite audio.
    """
    audio = np.asarray(audio)
    if audio.ndim != 1 or audio.size == 0:
        raise ValueError(f"expected non-empty mono audio (T,), got shape {audio.shape}")
    if not np.isfinite(audio).all():
        raise ValueError("audio contains NaN or Inf")
    buffer = io.BytesIO()
    sf.write(buffer, quantize_pcm16(audio), sample_rate, format="FLAC", subtype="PCM_16")
    return buffer.getvalue()


class ShardName(NamedTuple):
    """The parts of a shard file name."""

    split: str
    partition: int | None
    index: int


def shard_name(dataset: str, split: str, index: int, partition: int | None = None) -> str:
    """``{dataset}-{split}-{index:06d}.tar``, or ``{dataset}-{split}-p{partition:03d}-{index:06d}.tar``."""
    middle = "" if partition is None else f"p{partition:03d}-"
    return f"{dataset}-{split}-{middle}{index:06d}.tar"


def parse_shard_name(name: str, dataset: str) -> ShardName | None:
    """Split a complete shard's file name of ``dataset`` into its parts; None if it is not one."""
    match = re.fullmatch(re.escape(dataset) + r"-([A-Za-z0-9_]+)-(?:p(\d{3})-)?(\d{6})\.tar", name)
    if match is None:
        return None
    split, partition, index = match.groups()
    return ShardName(split, None if partition is None else int(partition), int(index))


def check_names(dataset: str, split: str) -> None:
    """Raise ValueError unless ``dataset`` and ``split`` are usable in shard names."""
    if not _DATASET_RE.fullmatch(dataset):
        raise ValueError(f"dataset name {dataset!r} must match {_DATASET_RE.pattern}")
    if not _SPLIT_RE.fullmatch(split):
        raise ValueError(f"split name {split!r} must match {_SPLIT_RE.pattern}")


def _member_key(name: str) -> tuple[str, str] | None:
    # WebDataset's rule: the key ends at the first dot of the base name
    folder, _, base = name.rpartition("/")
    if "." not in base:
        return None
    stem, _, extension = base.partition(".")
    return (f"{folder}/{stem}" if folder else stem), extension


class FlacRef(NamedTuple):
    """Where a sample's FLAC lies in its shard, and what the shard looked like then.

    ``size`` bytes from ``offset`` of ``path`` are member ``{key}.flac``, whose tar header
    had checksum ``header_chksum``, in a shard of ``shard_size`` bytes last modified at
    ``shard_mtime_ns``. :class:`MemberFile` checks all of it before reading, so a shard
    replaced after it was scanned is an error, never another track's audio.
    """

    path: str
    offset: int
    size: int
    key: str
    shard_size: int
    shard_mtime_ns: int
    header_chksum: int


class ShardChangedError(ValueError):
    """A shard is not the file it was when its samples were located."""


# tar: every member's data follows its 512-byte header block
TAR_BLOCK = 512


class MemberFile(io.RawIOBase):
    """A read-only, seekable file of one tar member's bytes, read from disk on demand.

    soundfile decodes from it like from a file, so a crop of a long track reads only the
    FLAC frames it needs, never the whole member.

    Args:
        ref: the member's location.

    Raises:
        ShardChangedError: naming the shard and sample, if the shard's size or
            modification time changed since ``ref`` was made, or the tar header before
            the data is not that of ``{key}.flac`` with the recorded size (this holds even
            when a copy kept the old modification time).
    """

    def __init__(self, ref: FlacRef) -> None:
        super().__init__()
        self._file = open(ref.path, "rb")  # noqa: SIM115 (closed by close())
        self._start, self._size, self._pos = ref.offset, ref.size, 0
        self._name = f"{ref.path}:{ref.key}.flac"
        try:
            problem = _changed(self._file, ref)
        except BaseException:
            self._file.close()
            raise
        if problem:
            self._file.close()
            raise ShardChangedError(
                f"{ref.path}: changed on disk since it was read (sample {ref.key!r}): {problem}"
            )

    def __repr__(self) -> str:
        return f"<{self._name}>"

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: self._size}[whence]
        self._pos = min(max(base + offset, 0), self._size)
        return self._pos

    def readinto(self, buffer: Any) -> int:
        count = min(len(buffer), self._size - self._pos)
        if count <= 0:
            return 0
        self._file.seek(self._start + self._pos)
        got = self._file.readinto(memoryview(buffer)[:count])
        self._pos += got
        return got

    def close(self) -> None:
        self._file.close()
        super().close()


def _changed(file: io.BufferedReader, ref: FlacRef) -> str | None:
    """What differs between the open shard and ``ref``'s record of it (None: nothing)."""
    stat = os.fstat(file.fileno())
    if stat.st_size != ref.shard_size:
        return f"{ref.shard_size} bytes then, {stat.st_size} now"
    if stat.st_mtime_ns != ref.shard_mtime_ns:
        return "modified since (another modification time)"
    if ref.offset < TAR_BLOCK:
        return f"no tar header before byte {ref.offset}"
    file.seek(ref.offset - TAR_BLOCK)
    try:
        header = tarfile.TarInfo.frombuf(file.read(TAR_BLOCK), tarfile.ENCODING, "surrogateescape")
    except tarfile.HeaderError:
        return f"no tar header before byte {ref.offset}"
    # a name longer than the header's 100 bytes is stored before it (GNU/pax), truncated here
    expected = f"{ref.key}.flac"
    if header.name != expected[:100] or header.size != ref.size:
        return (
            f"the member at byte {ref.offset} is {header.name!r} ({header.size} bytes), "
            f"not {expected!r} ({ref.size} bytes)"
        )
    if header.chksum != ref.header_chksum:
        return f"the tar header of {expected!r} differs"
    return None


def open_audio(source: bytes | FlacRef) -> io.RawIOBase | io.BytesIO:
    """A seekable file of encoded audio: in-memory bytes, or a member read from disk.

    Raises:
        ShardChangedError: the member's shard changed since it was located.
    """
    return io.BytesIO(source) if isinstance(source, bytes) else MemberFile(source)


def decode_error(err: Exception, source: bytes | FlacRef) -> ValueError:
    """A one-line ``cannot decode audio`` error for soundfile's ``err`` on ``source``.

    soundfile's message starts with the file object's repr (``Error opening <...>:``),
    which says nothing to a user: it is dropped, and an empty member says so.
    """
    size = len(source) if isinstance(source, bytes) else source.size
    message = re.sub(r"^Error opening <[^>]*>: ", "", str(err)).strip()
    return ValueError(f"cannot decode audio: {'0 bytes' if size == 0 else message}")


def _iter_members(path: Path, audio: str) -> Iterator[dict[str, Any]]:
    file = open(path, "rb")  # noqa: SIM115 (closed by the with below)
    stat = os.fstat(file.fileno())  # of the file the headers come from
    try:
        with file, tarfile.open(fileobj=file, mode="r:") as tar:
            seen: set[str] = set()
            key, parts = None, {}
            for member in tar:  # reads headers only; unread data is skipped by seeking
                split_name = _member_key(member.name) if member.isfile() else None
                if (
                    split_name is None
                    or split_name[1] not in ("flac", "json")
                    or not KEY_RE.fullmatch(split_name[0])  # "../x", "/abs/x": not our keys
                ):
                    continue  # anything else is never read, let alone unpickled
                if split_name[0] != key:
                    if key is not None:
                        yield _make_sample(path, key, parts)
                    key, parts = split_name[0], {}
                    if key in seen:
                        raise ValueError(f"{path}: sample {key!r} appears twice")
                    seen.add(key)
                extension = split_name[1]
                if extension in parts:
                    raise ValueError(f"{path}: sample {key!r} has two .{extension} members")
                if extension == "json" or audio == "bytes":
                    parts[extension] = tar.extractfile(member).read()
                elif audio == "ref":  # located, not read: the reader seeks in it later
                    if member.offset_data + member.size > stat.st_size:
                        raise ValueError(f"{path}: sample {key!r}: truncated .flac member")
                    parts[extension] = FlacRef(
                        str(path), member.offset_data, member.size, key, stat.st_size,
                        stat.st_mtime_ns, member.chksum,
                    )  # fmt: skip
                else:
                    parts[extension] = b""
            if key is not None:
                yield _make_sample(path, key, parts)
    except tarfile.TarError as err:
        raise ValueError(f"{path}: not a readable tar shard ({err})") from err


def _make_sample(path: Path, key: str, parts: dict[str, bytes]) -> dict[str, Any]:
    missing = {"flac", "json"} - parts.keys()
    if missing:
        raise ValueError(f"{path}: sample {key!r} lacks {', '.join(sorted(missing))}")
    try:
        meta = json.loads(parts["json"])
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError) as err:
        raise ValueError(f"{path}: sample {key!r} has invalid JSON ({err})") from err
    if not isinstance(meta, dict):
        raise ValueError(f"{path}: sample {key!r}: JSON is not an object")
    return {"key": key, "flac": parts["flac"], "json": meta}


def iter_shard(
    path: str | Path, audio: Literal["bytes", "ref"] = "bytes"
) -> Iterator[dict[str, Any]]:
    """Yield ``{"key", "flac", "json": dict}`` for each sample of a shard, in order.

    Args:
        path: the shard.
        audio: ``"bytes"``: ``flac`` is the member's bytes; ``"ref"``: a :class:`FlacRef`
            to decode from with :func:`open_audio` (nothing of the audio is read yet, so a
            long track costs no memory until it is decoded, and then only what is read).

    Raises:
        ValueError: naming the shard and key, for a sample without ``.flac`` or
            ``.json``, invalid JSON, a repeated key, a truncated member, or an unreadable
            tar.
    """
    return _iter_members(Path(path), audio)


def read_shard_meta(path: str | Path) -> list[dict[str, Any]]:
    """The ``{key}.json`` dicts of a shard, without reading its audio."""
    return [sample["json"] for sample in _iter_members(Path(path), audio="none")]
