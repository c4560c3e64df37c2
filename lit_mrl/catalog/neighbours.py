"""Nearest-neighbour indexes over track embeddings (FAISS), kept as safetensors + JSON.

Similarity is cosine: vectors are scaled to unit length and searched by inner product.
Two kinds:

- ``flat``: exact search over float32 vectors (``IndexFlatIP``). Every query reads all
  ``N x D`` floats, so its time grows linearly with the catalog: the default up to
  :data:`FLAT_MAX_TRACKS` tracks, where a query reads 0.7 GB (1728-d) and takes about
  0.1 s (memory-bound; ``bench/README.md``).
- ``ivf``: an inverted file (``IndexIVFScalarQuantizer``, float16 vectors): k-means
  cells (``nlist``, a power of two near ``sqrt(N)``), a query scans the ``nprobe``
  nearest cells (default 1/8 of them: recall@10 0.92 at 3 ms a query on the synthetic
  100k store, against 0.85 at 1/32). Half the memory of ``flat`` and a fraction of the work per query, at a
  recall below 1 (``similar --evaluate`` measures it).

An index folder::

    index/
        config.json           # kind, counts, the embeddings' fingerprint and splits, nlist
        vectors.safetensors   # vectors (N, D) in store order; ivf: assignments (N,) and
                              # centroids (nlist, D)
        keys.json             # the N track keys, row order

FAISS's own index files are not used: they are read by FAISS's C++ deserialiser, which
is not made for files from strangers. The index is rebuilt from the checked tensors
when it is read (a memory copy, no k-means).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from lit_mrl.catalog.vectors import TensorFileWriter, open_tensors
from lit_mrl.formats.embedding_checks import check_values
from lit_mrl.formats.embeddings import EmbeddingIndex, listed_parts, read_part

INDEX_FORMAT = "lit_mrl.neighbour_index"
CONFIG_NAME, VECTORS_NAME, KEYS_NAME = "config.json", "vectors.safetensors", "keys.json"
FLAT_MAX_TRACKS = 100_000
KINDS = ("flat", "ivf")
ROWS_PER_BLOCK = 65_536  # rows moved into FAISS at once when an index is read


def choose_kind(num_tracks: int) -> str:
    """``flat`` up to :data:`FLAT_MAX_TRACKS` tracks, ``ivf`` past it."""
    return "flat" if num_tracks <= FLAT_MAX_TRACKS else "ivf"


def default_nlist(num_tracks: int) -> int:
    """A power of two near ``sqrt(N)`` cells (1M tracks: 1024), at least 16."""
    return max(16, 2 ** round(np.log2(max(num_tracks, 1)) / 2))


def default_nprobe(nlist: int) -> int:
    """Cells a query scans: 1/8 of them, at least 8."""
    return min(nlist, max(8, nlist // 8))


def unit_rows(emb: np.ndarray) -> np.ndarray:
    """``(N, D)`` rows scaled to unit length, float32 (an all-zero row stays zero)."""
    emb = np.asarray(emb, dtype=np.float32)
    norms = np.linalg.norm(emb, axis=1, keepdims=True)
    return emb / np.where(norms > 0, norms, 1)


def iter_store(
    root: str | Path, index: EmbeddingIndex, splits: list[str], labels: bool = False
) -> Iterator[dict[str, np.ndarray]]:
    """Each listed part of ``splits`` (keys, embeddings, optionally labels), checked."""
    arrays = ("keys", "embeddings", "labels") if labels else ("keys", "embeddings")
    for split in splits:
        for path, entry in listed_parts(root, split, index):
            part = read_part(path, arrays, entry)
            check_values(path, part, index)
            yield part


@dataclass
class NeighbourIndex:
    """An index read back: its config, keys and the FAISS index over its vectors.

    Args:
        config: ``config.json``.
        keys: ``N`` track keys in row order.
        faiss_index: the FAISS index (rows are ids).
        tensors: the open vectors file (rows read on demand).
        folder: where it was read from.
    """

    config: dict[str, Any]
    keys: list[str]
    faiss_index: Any
    tensors: Any
    folder: Path
    _rows: dict[str, int] = field(default_factory=dict, repr=False)
    _keep: list[Any] = field(default_factory=list, repr=False)  # FAISS objects it refers to

    def row(self, key: str) -> int:
        """The row of track ``key``.

        Raises:
            UsageError: no such key.
        """
        from lit_mrl.errors import UsageError

        if not self._rows:
            self._rows = {k: i for i, k in enumerate(self.keys)}
        if key not in self._rows:
            raise UsageError(f"no track {key!r} in index {self.folder}")
        return self._rows[key]

    def vectors(self, rows: list[int]) -> np.ndarray:
        """``(len(rows), D)`` float32 unit vectors of the given rows, as stored."""
        piece = self.tensors.get_slice("vectors")
        return np.stack([piece[r : r + 1][0] for r in rows]).astype(np.float32)

    def search(
        self, queries: np.ndarray, k: int, nprobe: int | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Top ``k`` of ``(Q, D)`` queries: ``(Q, k)`` cosines and ``(Q, k)`` rows (-1: none)."""
        if self.config["kind"] == "ivf":
            self.faiss_index.nprobe = nprobe or default_nprobe(self.config["nlist"])
        return self.faiss_index.search(unit_rows(queries), k)


def train_centroids(
    root: str | Path, index: EmbeddingIndex, splits: list[str], nlist: int, seed: int
) -> np.ndarray:
    """``(nlist, D)`` spherical k-means centroids of a random sample of 40 rows a cell."""
    import faiss

    total = sum(e.num_samples for s in splits for e in index.splits[s].parts)
    rng = np.random.default_rng(seed)
    chosen = np.sort(rng.choice(total, size=min(total, 40 * nlist), replace=False))
    sample, start = [], 0
    for part in iter_store(root, index, splits):
        stop = start + len(part["keys"])
        lo, hi = np.searchsorted(chosen, [start, stop])
        sample.append(unit_rows(part["embeddings"][chosen[lo:hi] - start]))
        start = stop
    kmeans = faiss.Kmeans(index.embed_dim, nlist, niter=20, spherical=True, seed=seed,
                          max_points_per_centroid=40, verbose=False)  # fmt: skip
    kmeans.train(np.concatenate(sample))
    return kmeans.centroids.astype(np.float32)


def build_index(
    root: str | Path,
    index: EmbeddingIndex,
    splits: list[str],
    folder: str | Path,
    kind: str = "auto",
    nlist: int | None = None,
    seed: int = 0,
) -> dict[str, Any]:
    """Build an index of every track of ``splits`` into ``folder``, one part in memory.

    ``config.json`` is written last: its presence marks a complete index.

    Returns:
        The config.
    """
    import faiss

    from lit_mrl.formats.files import atomic_write

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    total = sum(e.num_samples for s in splits for e in index.splits[s].parts)
    kind = choose_kind(total) if kind == "auto" else kind
    dim = index.embed_dim
    tensors: dict[str, tuple[np.dtype, tuple[int, ...]]] = {
        "vectors": (np.dtype(np.float32 if kind == "flat" else np.float16), (total, dim))
    }
    quantizer = None
    if kind == "ivf":
        nlist = nlist or default_nlist(total)
        centroids = train_centroids(root, index, splits, nlist, seed)
        quantizer = faiss.IndexFlatIP(dim)
        quantizer.add(centroids)
        tensors["assignments"] = (np.dtype(np.int32), (total,))
        tensors["centroids"] = (np.dtype(np.float32), (nlist, dim))
    writer = TensorFileWriter(folder / VECTORS_NAME, tensors, {"format": INDEX_FORMAT})
    keys: list[str] = []
    assignments = []
    for part in iter_store(root, index, splits):
        vectors = unit_rows(part["embeddings"])
        writer.write("vectors", vectors)
        if quantizer is not None:
            assignments.append(quantizer.search(vectors, 1)[1][:, 0].astype(np.int32))
        keys.extend(part["keys"].tolist())
    if quantizer is not None:
        writer.write("assignments", np.concatenate(assignments))
        writer.write("centroids", centroids)
    writer.close()
    if len(set(keys)) != len(keys):
        raise ValueError(f"{root}: a track key appears twice in splits {splits}")
    atomic_write(folder / KEYS_NAME, json.dumps(keys).encode())
    config = {"format": INDEX_FORMAT, "format_version": 1, "kind": kind, "metric": "cosine",
              "num_tracks": total, "embed_dim": dim, "nlist": nlist if kind == "ivf" else None,
              "embeddings": str(Path(root).resolve()), "splits": list(splits),
              "fingerprint": index.settings.get("fingerprint"),
              "window_seconds": index.settings.get("window_seconds"),
              "hop_seconds": index.settings.get("hop_seconds")}  # fmt: skip
    atomic_write(folder / CONFIG_NAME, (json.dumps(config, indent=2) + "\n").encode())
    return config


def _checked_config(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: build the index with similar --embeddings")
    try:
        config = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError) as err:
        raise ValueError(f"{path} is not JSON ({err})") from err
    if not isinstance(config, dict) or config.get("format") != INDEX_FORMAT:
        raise ValueError(f"{path}: field 'format' is not {INDEX_FORMAT!r} (a neighbour index)")
    count = lambda v: isinstance(v, int) and not isinstance(v, bool) and v > 0  # noqa: E731
    checks = {"kind": config.get("kind") in KINDS, "num_tracks": count(config.get("num_tracks")),
              "embed_dim": count(config.get("embed_dim")),
              "nlist": config.get("kind") != "ivf" or count(config.get("nlist")),
              "splits": isinstance(config.get("splits"), list)}  # fmt: skip
    for name, ok in checks.items():
        if not ok:
            raise ValueError(f"{path}: field {name!r} is missing or invalid")
    return config


def read_neighbour_index(folder: str | Path) -> NeighbourIndex:
    """Read an index folder, every file checked, and rebuild its FAISS index.

    Raises:
        FileNotFoundError: no index there.
        ValueError: naming the file and field or tensor that is wrong.
    """
    folder = Path(folder)
    config = _checked_config(folder / CONFIG_NAME)
    total, dim = config["num_tracks"], config["embed_dim"]
    keys_path = folder / KEYS_NAME
    try:
        keys = json.loads(keys_path.read_text())
    except (OSError, json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ValueError(f"{keys_path} is not a readable JSON list of keys ({err})") from err
    if (
        not isinstance(keys, list)
        or len(keys) != total
        or not all(isinstance(k, str) for k in keys)
    ):
        raise ValueError(f"{keys_path}: not a list of {total} track keys")
    expected: dict[str, tuple[np.dtype, tuple[int, ...]]] = {
        "vectors": (np.dtype(np.float32 if config["kind"] == "flat" else np.float16), (total, dim))
    }
    if config["kind"] == "ivf":
        expected["assignments"] = (np.dtype(np.int32), (total,))
        expected["centroids"] = (np.dtype(np.float32), (config["nlist"], dim))
    path = folder / VECTORS_NAME
    tensors, _ = open_tensors(path, expected)
    keep: list[Any] = []
    faiss_index = _flat(tensors, total, dim, path) if config["kind"] == "flat" else (
        _ivf(tensors, config["nlist"], total, dim, path, keep))  # fmt: skip
    return NeighbourIndex(config, keys, faiss_index, tensors, folder, _keep=keep)


def _blocks(tensors: Any, name: str, total: int, path: Path) -> Iterator[tuple[int, np.ndarray]]:
    piece = tensors.get_slice(name)
    for start in range(0, total, ROWS_PER_BLOCK):
        block = piece[start : min(start + ROWS_PER_BLOCK, total)]
        if block.dtype.kind == "f" and not np.isfinite(block).all():
            raise ValueError(f"{path}: tensor {name} holds NaN or Inf near row {start}")
        yield start, block


def _flat(tensors: Any, total: int, dim: int, path: Path) -> Any:
    import faiss

    flat = faiss.IndexFlatIP(dim)
    for _, block in _blocks(tensors, "vectors", total, path):
        flat.add(block)
    return flat


def _ivf(tensors: Any, nlist: int, total: int, dim: int, path: Path, keep: list[Any]) -> Any:
    import faiss

    centroids = tensors.get_slice("centroids")[:]
    assignments = tensors.get_slice("assignments")[:]
    if not np.isfinite(centroids).all():
        raise ValueError(f"{path}: tensor centroids holds NaN or Inf")
    if len(assignments) and (assignments.min() < 0 or assignments.max() >= nlist):
        raise ValueError(f"{path}: tensor assignments names cells outside [0, {nlist})")
    quantizer = faiss.IndexFlatIP(dim)
    quantizer.add(centroids)
    ivf = faiss.IndexIVFScalarQuantizer(quantizer, dim, nlist, faiss.ScalarQuantizer.QT_fp16,
                                        faiss.METRIC_INNER_PRODUCT)  # fmt: skip
    ivf.by_residual = False  # codes are the vectors themselves, not their offsets from a centroid
    ivf.is_trained = True  # float16 codes need no training; the cells are the centroids
    for start, block in _blocks(tensors, "vectors", total, path):
        cells = assignments[start : start + len(block)]
        order = np.argsort(cells, kind="stable")
        bounds = np.searchsorted(cells[order], np.arange(nlist + 1))
        for cell in np.flatnonzero(np.diff(bounds)):
            rows = order[bounds[cell] : bounds[cell + 1]]
            ids = (rows + start).astype(np.int64)
            codes = np.ascontiguousarray(block[rows]).view(np.uint8)  # float16 bytes = codes
            ivf.invlists.add_entries(
                int(cell), len(rows), faiss.swig_ptr(ids), faiss.swig_ptr(codes)
            )
    ivf.ntotal = total
    keep.append(quantizer)
    return ivf
