"""The sharder's inputs as types: :class:`InputRow` (what a caller gives) and :class:`Item`.

An :class:`InputRow` is one track to shard: a file, or a member of a tar
(:class:`TarMember`), with its split, labels or targets. The command line makes rows
from a folder or a manifest, a dataset adapter from its dataset's metadata; both hand
them to :func:`data_prep.core.sharder.shard_rows`. The sharder turns each into an
:class:`Item`, its working record: the checks mark it with an ``error`` (listed in
``errors.jsonl``) or record the file's size and modification time for resuming.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

from lit_mrl.errors import UsageError
from lit_mrl.formats.shards import KEY_RE, sanitize_key


class TarMember(NamedTuple):
    """A tar member holding a track's audio: ``size`` bytes at ``offset`` of the tar.

    Args:
        name: the member's name in the tar (for messages and the fingerprint).
        offset: where its data starts, in bytes from the start of the tar.
        size: its length in bytes.
    """

    name: str
    offset: int
    size: int


@dataclass
class InputRow:
    """One track to shard.

    Args:
        path: the audio file; for a tar member, the tar.
        split: split name (``[A-Za-z0-9_]+``).
        key: sample key (``[A-Za-z0-9_-]+``); empty: made from ``source`` by
            :func:`lit_mrl.formats.shards.sanitize_key`.
        track_id: the dataset's own id; empty: the key.
        labels: label names (multilabel / multiclass).
        targets: regression values, ordered like the vocabulary.
        meta: an object of the caller's own fields, kept verbatim in the sample's json.
        member: the tar member holding the audio, when ``path`` is a tar.
        error: why the row cannot be sharded, when that is known before decoding (a broken
            label field, ...): listed in ``errors.jsonl`` like a file that fails to decode.
        source: the path as written where the row was listed (``errors.jsonl`` names it);
            empty: ``path`` (``path/member`` for a tar member).
        origin: where the row was listed, for messages (``manifest.jsonl:12``); empty:
            its position among the rows.
    """

    path: Path
    split: str = "train"
    key: str = ""
    track_id: str = ""
    labels: list[str] = field(default_factory=list)
    targets: list[float] | None = None
    meta: dict[str, Any] | None = None
    member: TarMember | None = None
    error: str | None = None
    source: str = ""
    origin: str = ""


@dataclass
class Item:
    """The sharder's record of one input: a track to shard, or a reason it cannot be.

    Args:
        source: the path as given (folder walk or manifest).
        origin: where it was listed, for messages (``manifest.jsonl:12`` or the path).
        path: the file to read (for a tar member: the tar).
        key: sample key.
        track_id: track id (defaults to the key).
        split: split name.
        labels: label names.
        targets: regression values, ordered like the vocabulary.
        meta: the row's ``meta`` object, kept verbatim in the sample's json (never read).
        member: the tar member holding the audio, or None for a plain file.
        error: why it is not sharded, or None.
        size: file (or member) size in bytes, once the checks found it.
        mtime_ns: file (or tar) modification time in nanoseconds, likewise.
    """

    source: str
    origin: str
    path: Path
    key: str = ""
    track_id: str = ""
    split: str = "train"
    labels: list[str] = field(default_factory=list)
    targets: list[float] | None = None
    meta: dict[str, Any] | None = None
    member: TarMember | None = None
    error: str | None = None
    size: int = 0
    mtime_ns: int = 0

    @classmethod
    def from_row(cls, row: InputRow, position: str) -> Item:
        """The record of ``row``; ``position`` is its origin when the row names none.

        Raises:
            UsageError: naming the row, for a key that is not ``[A-Za-z0-9_-]+``.
        """
        source = row.source or (
            str(row.path) if row.member is None else f"{row.path}/{row.member.name}"
        )
        origin = row.origin or position
        key = row.key or key_or_empty(source)
        if row.key and not KEY_RE.fullmatch(row.key):
            raise UsageError(f"{origin}: key {row.key!r} must match [A-Za-z0-9_-]+")
        return cls(
            source=source,
            origin=origin,
            path=Path(row.path),
            key=key,
            track_id=row.track_id or key,
            split=row.split,
            labels=list(row.labels),
            targets=None if row.targets is None else [float(t) for t in row.targets],
            meta=row.meta,
            member=row.member,
            error=row.error,
        )


def key_or_empty(text: str) -> str:
    """:func:`~lit_mrl.formats.shards.sanitize_key` of ``text``, or ``""`` if nothing is left."""
    try:
        return sanitize_key(text)
    except ValueError:
        return ""
