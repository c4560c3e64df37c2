"""One embeddings part labelled: read it, apply every head, write its table part.

The unit of work of ``python -m lit_mrl label``: a part's rows are the only embeddings
in memory (about ``part_size x D`` floats), so labelling memory does not grow with the
catalog. Each table part is written to a temporary name and renamed; its metadata
records the digests of the embeddings part it was made from, so a rerun skips parts
whose table is there and still matches, and redoes the others.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from lit_mrl.catalog.head import ProbeHead, read_head
from lit_mrl.formats.embedding_checks import check_values
from lit_mrl.formats.embeddings import EmbeddingIndex, PartEntry, read_part
from lit_mrl.formats.files import atomic_file

PARTS_DIR = "parts"
SOURCE_KEY = b"lit_mrl.label.source"


@dataclass(frozen=True)
class Work:
    """One embeddings part to label.

    Args:
        split: its split.
        path: the part file.
        entry: its ``index.json`` entry (counts and digests).
        table: where its table part goes.
    """

    split: str
    path: Path
    entry: PartEntry
    table: Path

    @property
    def source(self) -> dict[str, Any]:
        """What the table part records of its input (checked on resume)."""
        return {"part": self.entry.name, "split": self.split, "tracks": self.entry.num_samples,
                "keys": self.entry.digests["keys"],
                "embeddings": self.entry.digests["embeddings"]}  # fmt: skip


def table_part_path(out: Path, entry: PartEntry) -> Path:
    """``out/parts/<part name>.parquet``."""
    return out / PARTS_DIR / (Path(entry.name).stem + ".parquet")


def is_done(work: Work) -> bool:
    """Whether ``work``'s table part exists and was made from the same embeddings part."""
    import pyarrow.parquet as pq

    if not work.table.is_file():
        return False
    try:
        metadata = pq.read_schema(work.table).metadata or {}
    except (OSError, ValueError):  # a damaged table part is made again
        return False
    raw = metadata.get(SOURCE_KEY)
    return raw is not None and json.loads(raw) == work.source


def label_part(
    work: Work, heads: list[ProbeHead], index: EmbeddingIndex, top_k: int, per_seed: bool
) -> int:
    """Label one embeddings part into its table part; returns its number of tracks."""
    import pyarrow.parquet as pq

    from lit_mrl.catalog.table import part_table

    part = read_part(work.path, ("keys", "embeddings"), work.entry)
    check_values(work.path, part, index)
    emb = torch.from_numpy(part["embeddings"])  # (N, D) float32
    scores = [head.scores(emb).numpy() for head in heads]  # per head (E, N, K)
    table = part_table(part["keys"].tolist(), work.split, heads, scores, top_k, per_seed)
    table = table.replace_schema_metadata({SOURCE_KEY: json.dumps(work.source).encode()})
    work.table.parent.mkdir(parents=True, exist_ok=True)
    with atomic_file(work.table) as file:
        pq.write_table(table, file)
    return len(part["keys"])


def label_parts(
    works: list[Work],
    head_paths: list[str],
    digests: list[str],
    root: str,
    top_k: int,
    per_seed: bool,
    threads: int,
) -> int:
    """Label ``works`` in this process (a worker of ``label --processes N``); tracks done.

    Heads are read again here and must have the digests the parent read.
    """
    from lit_mrl.formats.embeddings import read_index

    torch.set_num_threads(threads)
    heads = [read_head(path) for path in head_paths]
    for head, digest in zip(heads, digests, strict=True):
        if head.digest != digest:
            raise ValueError(f"{head.folder} changed while labelling; rerun to resume")
    index = read_index(root)
    return int(np.sum([label_part(w, heads, index, top_k, per_seed) for w in works]))
