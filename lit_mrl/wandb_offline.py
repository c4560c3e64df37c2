"""W&B offline: log offline unless an account is set up, and read offline runs back.

:func:`default_to_offline` is what every lit_mrl command calls before W&B starts.
The rest reads offline runs (``wandb/offline-run-*/run-*.wandb``) without syncing them.

An offline run keeps its history only in the binary ``run-<id>.wandb`` file;
``files/wandb-summary.json`` and ``files/config.yaml`` are often missing offline. That
file is an append-only log of ``wandb.proto.wandb_internal_pb2.Record`` protobufs in
LevelDB's log framing::

    file:   ":W&B" | magic 0xBEE1 (uint16 LE) | version (uint8)      7-byte header
    blocks: 32 KiB each (the file header counts in block 0); a chunk never crosses a
            block end, and a block tail shorter than a chunk header is zero padding
    chunk:  crc32(type byte + data) (uint32 LE) | length (uint16 LE) | type (uint8) | data
            type 1 = a whole record, 2/3/4 = first/middle/last piece of one record

wandb >= 0.2x no longer ships a Python reader for it (the SDK's writer moved to its Go
core), so this module frames the records itself and lets the SDK's protobuf classes
decode them. Checked against files written by wandb 0.31.
"""

from __future__ import annotations

import json
import netrc
import os
import struct
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


def wandb_has_account() -> bool:
    """Whether W&B credentials are configured (env var or ``wandb login``'s netrc)."""
    if os.environ.get("WANDB_API_KEY"):
        return True
    try:
        hosts = netrc.netrc().hosts
    except (FileNotFoundError, netrc.NetrcParseError):
        return False
    return any("wandb" in host for host in hosts)


def default_to_offline() -> None:
    """Set ``WANDB_MODE=offline`` unless it is set or an account is configured.

    A run then never needs the network; ``WANDB_MODE`` given by the user always wins.
    """
    if "WANDB_MODE" not in os.environ and not wandb_has_account():
        os.environ["WANDB_MODE"] = "offline"


FILE_HEADER = struct.Struct("<4sHB")  # ident, magic, version
CHUNK_HEADER = struct.Struct("<IHB")  # crc32, data length, chunk type
IDENT, MAGIC = b":W&B", 0xBEE1
BLOCK_SIZE = 32768
FULL, FIRST, MIDDLE, LAST = 1, 2, 3, 4


def iter_record_bytes(path: str | Path) -> Iterator[bytes]:
    """Serialized records of one ``.wandb`` file, in write order.

    Stops quietly at a torn or corrupt tail (a run that is still being written or was
    killed mid-write): every record before it is returned.

    Raises:
        ValueError: the file does not start with the W&B log header.
    """
    data = Path(path).read_bytes()
    if len(data) < FILE_HEADER.size:
        raise ValueError(f"{path} is not a W&B run log (too short)")
    ident, magic, _ = FILE_HEADER.unpack_from(data)
    if ident != IDENT or magic != MAGIC:
        raise ValueError(f"{path} is not a W&B run log (header {data[:7]!r})")
    pos, pending = FILE_HEADER.size, None
    while pos + CHUNK_HEADER.size <= len(data):
        if BLOCK_SIZE - pos % BLOCK_SIZE < CHUNK_HEADER.size:
            pos += BLOCK_SIZE - pos % BLOCK_SIZE  # zero padding up to the next block
            continue
        crc, length, kind = CHUNK_HEADER.unpack_from(data, pos)
        start = pos + CHUNK_HEADER.size
        chunk = data[start : start + length]
        if len(chunk) < length or zlib.crc32(bytes([kind]) + chunk) != crc:
            return
        pos = start + length
        if kind == FULL:
            yield chunk
        elif kind == FIRST:
            pending = bytearray(chunk)
        elif kind in (MIDDLE, LAST) and pending is not None:
            pending += chunk
            if kind == LAST:
                yield bytes(pending)
                pending = None


def iter_records(path: str | Path) -> Iterator[Any]:
    """Decoded ``wandb_internal_pb2.Record`` messages of one ``.wandb`` file."""
    from wandb.proto import wandb_internal_pb2

    for raw in iter_record_bytes(path):
        record = wandb_internal_pb2.Record()
        record.ParseFromString(raw)
        yield record


def _items(items: Any) -> dict[str, Any]:
    """``{key: value}`` of repeated ``*Item``s; nested keys are joined with ``/``."""
    return {(item.key or "/".join(item.nested_key)): json.loads(item.value_json) for item in items}


@dataclass
class OfflineRun:
    """One offline run, read back.

    Args:
        path: the run folder (``.../wandb/offline-run-<time>-<id>``).
        run_id: W&B run id.
        name: display name (``trainer.logger.init_args.name``), else the id.
        project: W&B project.
        config: the run config, as logged (later updates win).
        history: one dict per ``log`` call (``_step``, ``_timestamp``, metric keys...).
        summary: last summary values.
        complete: the run's exit record was read: it finished, and its file is whole.
            ``run.finish()`` can return before the W&B service has flushed the file;
            ``wandb.teardown()`` waits for it.
    """

    path: Path
    run_id: str = ""
    name: str = ""
    project: str = ""
    config: dict[str, Any] = field(default_factory=dict)
    history: list[dict[str, Any]] = field(default_factory=list)
    summary: dict[str, Any] = field(default_factory=dict)
    complete: bool = False

    def metric(self, key: str, step: str = "_step") -> tuple[list[float], list[float]]:
        """``(steps, values)`` of the history rows holding a number under ``key``.

        Args:
            key: a logged key, e.g. ``"train/loss"``.
            step: the x axis, e.g. ``"trainer/global_step"`` (Lightning's step);
                rows without it are skipped.
        """
        pairs = [
            (row[step], row[key])
            for row in self.history
            if isinstance(row.get(key), int | float) and isinstance(row.get(step), int | float)
        ]
        return [float(s) for s, _ in pairs], [float(v) for _, v in pairs]


def read_run(run_dir: str | Path) -> OfflineRun:
    """Read the ``run-*.wandb`` file of one offline run folder.

    Raises:
        FileNotFoundError: the folder holds no ``run-*.wandb`` file.
    """
    run_dir = Path(run_dir)
    logs = sorted(run_dir.glob("run-*.wandb"))
    if not logs:
        raise FileNotFoundError(f"no run-*.wandb file in {run_dir}")
    run = OfflineRun(path=run_dir)
    for record in iter_records(logs[0]):
        kind = record.WhichOneof("record_type")
        if kind == "run":
            run.run_id, run.project = record.run.run_id, record.run.project
            run.name = record.run.display_name or record.run.run_id
            run.config.update(_items(record.run.config.update))
        elif kind == "config":
            run.config.update(_items(record.config.update))
        elif kind == "history":
            run.history.append(_items(record.history.item))
        elif kind == "summary":
            run.summary.update(_items(record.summary.update))
        elif kind == "exit":
            run.complete = True
    run.config.pop("_wandb", None)  # the SDK's own bookkeeping
    return run


def find_runs(root: str | Path) -> list[Path]:
    """Offline run folders under ``root`` (e.g. ``runs`` or ``runs/wandb``), oldest first."""
    return sorted(
        (p for p in Path(root).rglob("offline-run-*") if p.is_dir()), key=lambda p: p.name
    )
