"""Reading foreign WebDataset tars one member at a time, never trusting a name or unpickling.

:func:`scan_tar` walks a tar's headers (the data of audio members is skipped over, not
read) and groups members into samples by WebDataset's rule: the key is the member's name
up to the first dot of its base name (``clips/abc.flac`` -> ``clips/abc``, ``flac``). A
member is used only if it is a regular file with a safe name (relative, no ``..``, no
backslash) and one of the extensions lit_mrl knows: audio (located for the decoder),
``json``, ``cls`` and ``txt`` (read, at most :data:`MAX_LABEL_BYTES`, only when they are
the label source). Anything else (``.pyd``, ``.pickle``, ``.pth``, ...) is counted by
extension and never read.
"""

from __future__ import annotations

import tarfile
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from data_prep.core.rows import TarMember
from lit_mrl.formats.containers import AUDIO_EXTENSIONS

AUDIO = frozenset(extension.lstrip(".") for extension in AUDIO_EXTENSIONS)
LABEL_MEMBERS = ("json", "cls", "txt")
MAX_LABEL_BYTES = 1 << 20


@dataclass
class Sample:
    """The members of one key in a tar.

    Args:
        key: the WebDataset key (``clips/abc``).
        audio: the audio members, in tar order.
        label_data: extension -> bytes of the label member read (or None: over the limit).
        label_members: extensions of the label members present (read or not).
    """

    key: str
    audio: list[TarMember] = field(default_factory=list)
    label_data: dict[str, bytes | None] = field(default_factory=dict)
    label_members: set[str] = field(default_factory=set)


@dataclass
class TarScan:
    """What one tar holds.

    Args:
        samples: key -> its members, in order of first appearance.
        unknown: extension -> count of members never read (``.pickle``, ...).
        unsafe: names of members refused (absolute, ``..``, links, devices).
        error: why the tar could not be read to its end, or None.
    """

    samples: dict[str, Sample] = field(default_factory=dict)
    unknown: Counter = field(default_factory=Counter)
    unsafe: list[str] = field(default_factory=list)
    error: str | None = None


def split_name(name: str) -> tuple[str, str] | None:
    """``(key, extension)`` of a member name by WebDataset's rule, or None if it has no dot."""
    folder, _, base = name.rpartition("/")
    stem, dot, extension = base.partition(".")
    if not dot or not stem:
        return None
    return (f"{folder}/{stem}" if folder else stem), extension.lower()


def unsafe(member: tarfile.TarInfo) -> bool:
    """A member the reader refuses: not a regular file, or a name that could leave a folder."""
    parts = member.name.split("/")
    return (
        not member.isfile()
        or member.name.startswith("/")
        or "\\" in member.name
        or any(part in ("", ".", "..") for part in parts)
    )


def scan_tar(path: Path, label_source: str | None) -> TarScan:
    """Group ``path``'s members into samples; reads only the ``label_source`` members.

    Args:
        path: an uncompressed tar.
        label_source: ``json``, ``cls``, ``txt`` or None (no labels read).
    """
    scan = TarScan()
    count = 0
    try:
        with tarfile.open(path, mode="r:") as tar:
            for member in tar:  # headers only: unread data is skipped by seeking
                count += 1
                if member.isdir():
                    continue
                if unsafe(member):
                    scan.unsafe.append(member.name)
                    continue
                parsed = split_name(member.name)
                if parsed is None:
                    scan.unknown["(none)"] += 1
                    continue
                key, extension = parsed
                if extension in AUDIO:
                    sample = scan.samples.setdefault(key, Sample(key))
                    sample.audio.append(TarMember(member.name, member.offset_data, member.size))
                elif extension in LABEL_MEMBERS:
                    sample = scan.samples.setdefault(key, Sample(key))
                    sample.label_members.add(extension)
                    if extension == label_source:
                        sample.label_data[extension] = _read_small(tar, member)
                else:
                    scan.unknown[f".{extension}"] += 1  # never read, let alone unpickled
    except (tarfile.TarError, OSError) as err:
        scan.error = f"not a readable tar after {count} members ({err}); is it compressed?"
    return scan


def _read_small(tar: tarfile.TarFile, member: tarfile.TarInfo) -> bytes | None:
    if member.size > MAX_LABEL_BYTES:
        return None
    file = tar.extractfile(member)
    return None if file is None else file.read()


def split_of(parts: list[str]) -> str | None:
    """The split a tar's path names (innermost first): ``train/shard-0.tar`` -> ``train``."""
    for part in reversed(parts):
        for token in part.lower().replace("-", "_").replace(".", "_").split("_"):
            if token in SPLIT_WORDS:
                return SPLIT_WORDS[token]
    return None


SPLIT_WORDS = {
    **dict.fromkeys(("train", "training"), "train"),
    **dict.fromkeys(("valid", "validation", "val", "dev"), "valid"),
    **dict.fromkeys(("test", "testing", "eval", "evaluation"), "test"),
}
