"""Input fingerprints: what resume compares to know that a sharded sample is still current.

Each sample's ``{key}.json`` records the input row it was made from: ``split``,
``labels``, ``targets``, ``track_id``, ``meta`` and ``sample_rate`` (fields the format
already has) and a ``fingerprint`` object with what else changes the audio::

    "fingerprint": {"path": "/abs/path/a.wav", "size": 88244, "mtime_ns": 1718000000000000000,
                    "max_seconds": null}

(a track read from a tar member adds ``"member"``, its name; ``size`` is the member's and
``mtime_ns`` the tar's.)

The shard is the journal: a sample and its fingerprint are written together, so a
crash never leaves one without the other. On a rerun, a sharded key whose row now
differs (another file, size or modification time, other labels, targets, meta, split
or ``--max_seconds``), or that is no longer among the inputs, stops the run
(:func:`check_unchanged`); ``--overwrite`` starts the dataset over.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from typing import Any

from data_prep.core.inputs import pending
from data_prep.core.rows import Item
from lit_mrl.errors import UsageError

FINGERPRINT = "fingerprint"
# meta fields compared on resume, in the order a difference is reported
COMPARED = ("split", "labels", "targets", "track_id", "meta", FINGERPRINT)


def fingerprint(item: Item, max_seconds: float | None) -> dict[str, Any]:
    """The ``fingerprint`` object of an input that :func:`~data_prep.core.inputs.check_files` found."""
    found = {
        "path": os.path.abspath(item.path),
        "size": item.size,
        "mtime_ns": item.mtime_ns,
        "max_seconds": max_seconds,
    }
    if item.member is not None:
        found["member"] = item.member.name
    return found


def compared_fields(meta: Mapping[str, Any]) -> dict[str, Any]:
    """The fields of a sample's meta that resume compares (kept per key while sharding)."""
    return {name: meta.get(name) for name in COMPARED}


def expected_fields(item: Item, max_seconds: float | None) -> dict[str, Any]:
    """What :func:`compared_fields` of ``item``'s sample would be if it were sharded now."""
    return {
        "split": item.split,
        "labels": list(item.labels),
        "targets": item.targets,
        "track_id": item.track_id,
        "meta": item.meta,
        FINGERPRINT: fingerprint(item, max_seconds),
    }


def describe_change(sharded: Mapping[str, Any], now: Mapping[str, Any]) -> str | None:
    """How an input differs from its sharded sample (``"labels differ: ..."``), or None."""
    old, new = sharded.get(FINGERPRINT), now[FINGERPRINT]
    if not isinstance(old, dict):
        return "the sample has no input fingerprint (sharded by an older data_prep)"
    if old.get("path") != new["path"]:
        return f"path differs: {old.get('path')} in the shard, {new['path']} now"
    if old.get("member") != new.get("member"):
        return f"tar member differs: {old.get('member')} in the shard, {new.get('member')} now"
    if old.get("size") != new["size"]:
        return f"file changed: {old.get('size')} bytes when sharded, {new['size']} now"
    if old.get("mtime_ns") != new["mtime_ns"]:
        return "file changed: modified since it was sharded"
    if old.get("max_seconds") != new["max_seconds"]:
        return f"--max_seconds differs: {old.get('max_seconds')} in the shard, {new['max_seconds']} now"
    for name in COMPARED[:-1]:
        if sharded.get(name) != now[name]:
            verb = "differ" if name.endswith("s") else "differs"
            return f"{name} {verb}: {sharded.get(name)!r} in the shard, {now[name]!r} now"
    return None


def find_changes(
    items: Iterable[Item], sharded: Mapping[str, Mapping[str, Any]], max_seconds: float | None
) -> tuple[dict[str, str], dict[str, str]]:
    """Sharded keys whose input changed, and those no longer among ``items``.

    Args:
        items: this run's inputs (failed ones included).
        sharded: key -> :func:`compared_fields` of every sample already in the shards.
        max_seconds: this run's ``--max_seconds``.

    Returns:
        ``(changed, removed)``: key -> what changed, for each kind.
    """
    items = list(items)
    current = {item.key: item for item in pending(items)}
    failing = {item.key: item.error for item in items if item.error and item.key}
    changed, removed = {}, {}
    for key in sorted(sharded):
        if key in current:
            what = describe_change(sharded[key], expected_fields(current[key], max_seconds))
            if what is not None:
                changed[key] = what
        elif key in failing:
            changed[key] = f"the input now fails: {failing[key]}"
        else:
            removed[key] = "no longer among the inputs"
    return changed, removed


def check_unchanged(
    items: Iterable[Item],
    sharded: Mapping[str, Mapping[str, Any]],
    max_seconds: float | None,
    where: str,
) -> None:
    """Refuse to resume onto samples made from other inputs.

    Args:
        items: this run's inputs.
        sharded: see :func:`find_changes`.
        max_seconds: this run's ``--max_seconds``.
        where: the dataset and folder, for the message (``"'cat' in shards/cat"``).

    Raises:
        UsageError: one line with the counts, one example key and what changed.
    """
    changed, removed = find_changes(items, sharded, max_seconds)
    if not changed and not removed:
        return
    parts = [f"{len(changed)} changed"] if changed else []
    parts += [f"{len(removed)} no longer among the inputs"] if removed else []
    key, what = next(iter(changed.items())) if changed else next(iter(removed.items()))
    count = len(changed) + len(removed)
    raise UsageError(
        f"the shards of {where} do not match the inputs: {count} sharded "
        f"sample{'s' * (count != 1)} ({', '.join(parts)}), e.g. {key!r}: {what}; rerun with "
        "--overwrite to delete this dataset's shards, info and errors there and shard from scratch"
    )
