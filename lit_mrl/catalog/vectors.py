"""A safetensors file written a block of rows at a time, and read back a block at a time.

A nearest-neighbour index holds every track's vector: at 10M tracks x 1728 floats that
is more than a machine's memory, so the file is written as the store is read, part by
part. The layout is safetensors' own (an 8-byte little-endian header length, a JSON
header giving each tensor's dtype, shape and byte range, then the bytes), so any
safetensors reader opens it; reading uses the safetensors library (memory-mapped, no
code runs) and every tensor is checked against the shape and dtype expected.
"""

from __future__ import annotations

import json
import os
import struct
from pathlib import Path
from typing import BinaryIO

import numpy as np

DTYPES = {np.dtype(np.float32): "F32", np.dtype(np.float16): "F16",
          np.dtype(np.int32): "I32", np.dtype(np.int64): "I64"}  # fmt: skip


class TensorFileWriter:
    """Write tensors of shapes known ahead, each filled in row blocks, in declared order.

    Args:
        path: the file (written as ``path.tmp`` and renamed by :meth:`close`).
        tensors: ``{name: (dtype, shape)}`` in the order their bytes will be written.
        metadata: string metadata of the file.
    """

    def __init__(
        self,
        path: str | Path,
        tensors: dict[str, tuple[np.dtype, tuple[int, ...]]],
        metadata: dict[str, str] | None = None,
    ) -> None:
        self.path = Path(path)
        self.tmp = self.path.with_name(self.path.name + ".tmp")
        header: dict[str, object] = {"__metadata__": metadata or {}}
        self.sizes: dict[str, int] = {}
        start = 0
        for name, (dtype, shape) in tensors.items():
            size = int(np.prod(shape, dtype=np.int64)) * np.dtype(dtype).itemsize
            header[name] = {"dtype": DTYPES[np.dtype(dtype)], "shape": list(shape),
                            "data_offsets": [start, start + size]}  # fmt: skip
            self.sizes[name] = size
            start += size
        self.specs = {name: np.dtype(dtype) for name, (dtype, _) in tensors.items()}
        text = json.dumps(header, separators=(",", ":")).encode()
        text += b" " * (-len(text) % 8)  # the data starts 8-byte aligned
        self.file: BinaryIO = open(self.tmp, "wb")  # noqa: SIM115 (closed in close())
        self.file.write(struct.pack("<Q", len(text)) + text)
        self.order = list(tensors)
        self.written = dict.fromkeys(tensors, 0)

    def write(self, name: str, rows: np.ndarray) -> None:
        """Append ``rows`` to tensor ``name``; tensors are filled one after the other."""
        current = next(n for n in self.order if self.written[n] < self.sizes[n])
        if name != current:
            raise RuntimeError(f"tensor {name} written before {current} is complete")
        data = np.ascontiguousarray(rows, dtype=self.specs[name]).tobytes()
        if self.written[name] + len(data) > self.sizes[name]:
            raise RuntimeError(f"more rows than tensor {name} holds")
        self.file.write(data)
        self.written[name] += len(data)

    def close(self) -> None:
        """Check every tensor is complete, then give the file its name."""
        short = [n for n in self.order if self.written[n] != self.sizes[n]]
        self.file.flush()
        os.fsync(self.file.fileno())
        self.file.close()
        if short:
            self.tmp.unlink()
            raise RuntimeError(f"tensors {short} were not filled")
        os.replace(self.tmp, self.path)


def open_tensors(
    path: str | Path, expected: dict[str, tuple[np.dtype, tuple[int, ...]]]
) -> tuple[object, dict[str, str]]:
    """Open a tensor file (memory-mapped) after checking it holds exactly ``expected``.

    Returns:
        The open file (``get_slice(name)[a:b]`` reads rows) and its metadata.

    Raises:
        ValueError: naming the file and the tensor that is missing or of another shape.
    """
    from safetensors import SafetensorError, safe_open

    try:
        handle = safe_open(str(path), framework="numpy")
    except (SafetensorError, OSError, ValueError) as err:
        raise ValueError(f"{path} is not a readable safetensors file: {err}") from err
    names = set(handle.keys())
    if names != set(expected):
        raise ValueError(f"{path}: holds tensors {sorted(names)}, expected {sorted(expected)}")
    for name, (dtype, shape) in expected.items():
        piece = handle.get_slice(name)
        if tuple(piece.get_shape()) != tuple(shape) or piece.get_dtype() != DTYPES[np.dtype(dtype)]:
            raise ValueError(f"{path}: tensor {name} is {piece.get_dtype()} "
                             f"{tuple(piece.get_shape())}, expected {DTYPES[np.dtype(dtype)]} "
                             f"{tuple(shape)}")  # fmt: skip
    return handle, handle.metadata() or {}
