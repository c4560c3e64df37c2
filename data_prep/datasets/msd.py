"""MSD Last.fm top-50 tagging (Choi et al. split): ``python -m data_prep.datasets.msd --root AUDIO ... --out OUT``.

The Million Song Dataset ships no audio, so the user supplies:

- ``--audio_list``: a CSV or TSV of ``track_id, path`` (MSD track id such as
  ``TRAAAAK128F9318786``; path relative to ``--root`` or absolute, e.g. the
  7digital preview ``3/6/36122424.clip.mp3``). A ``track_id,path`` header is allowed.
- The split of Choi et al. (2016), from ``keunwoochoi/MSD_split_for_tagging``:
  ``{train,valid,test}_x_msd_id.txt`` (one track id per line) via ``--train_ids``
  / ``--valid_ids`` / ``--test_ids``, and the aligned label matrices
  ``{train,valid,test}_y.npy`` (``(N, 50)``, 0/1) via ``--train_labels`` etc.
- ``--tags``: the 50 tag names in the column order of the label matrices, one
  per line (e.g. ``50tagList.txt``).

Tracks of the split without an audio path are skipped and listed in
``skipped.jsonl``. Pickled lists (``*.cP``) are not read: pickles can run code.
"""

from __future__ import annotations

import argparse
import csv
import re
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from data_prep.core.rows import InputRow
from data_prep.datasets.adapter import Prepared, Skipped, make_parser, run_adapter
from data_prep.datasets.metadata import (
    SPLITS,
    MetadataError,
    read_lines,
    read_vocabulary,
    require_file,
)

_TRACK_ID = re.compile(r"TR[A-Z0-9]{16}")


def read_audio_list(path: Path, root: Path) -> dict[str, Path]:
    """Track id -> audio path, from a 2-column CSV (``.csv``) or TSV (anything else)."""
    require_file(path, "audio list (track_id, path)")
    delimiter = "," if path.suffix.lower() == ".csv" else "\t"
    paths: dict[str, Path] = {}
    with open(path, encoding="utf-8-sig", newline="") as file:
        reader = csv.reader(file, delimiter=delimiter)
        for fields in reader:
            line = reader.line_num
            fields = [field.strip() for field in fields]
            if not any(fields):
                continue
            if line == 1 and [f.lower() for f in fields] == ["track_id", "path"]:
                continue
            if len(fields) != 2 or not _TRACK_ID.fullmatch(fields[0]) or not fields[1]:
                raise MetadataError(
                    path, f"expected 'TR<16 characters>{delimiter}<audio path>', got {fields}", line
                )
            if fields[0] in paths:
                raise MetadataError(path, f"{fields[0]} is listed twice", line)
            paths[fields[0]] = root / fields[1]
    return paths


def read_ids(path: Path) -> list[str]:
    """Track ids, one per line (Choi's ``*_x_msd_id.txt``)."""
    ids = []
    for line, text in read_lines(path, "track id list"):
        if not _TRACK_ID.fullmatch(text):
            raise MetadataError(path, f"{text!r} is not an MSD track id", line)
        ids.append(text)
    return ids


def read_labels(path: Path, num_rows: int, num_tags: int, ids_file: Path) -> np.ndarray:
    """A ``(num_rows, num_tags)`` 0/1 matrix from ``.npy`` (never unpickled)."""
    require_file(path, "label matrix (.npy)")
    try:
        labels = np.load(path, allow_pickle=False)
    except (ValueError, OSError) as err:
        raise MetadataError(path, f"not a readable .npy array ({err})") from None
    labels = labels.reshape(labels.shape[0], -1) if labels.ndim > 1 else labels
    if labels.shape != (num_rows, num_tags):
        raise MetadataError(
            path,
            f"shape {labels.shape}, expected ({num_rows}, {num_tags}): "
            f"{num_rows} ids in {ids_file} x {num_tags} tags",
        )
    if not np.isin(labels, (0, 1)).all():
        raise MetadataError(path, "label values must be 0 or 1")
    return labels.astype(bool)


def prepare(args: argparse.Namespace) -> Prepared:
    tags = read_vocabulary(args.tags)
    audio = read_audio_list(args.audio_list, args.root)
    entries, skipped, seen = [], [], {}
    for split in SPLITS:
        ids_file, labels_file = getattr(args, f"{split}_ids"), getattr(args, f"{split}_labels")
        ids = read_ids(ids_file)
        labels = read_labels(labels_file, len(ids), len(tags), ids_file)
        for track_id, row in zip(ids, labels, strict=True):
            if track_id in seen:
                raise MetadataError(ids_file, f"{track_id} is also in the {seen[track_id]} list")
            seen[track_id] = split
            if track_id not in audio:
                skipped.append(Skipped(track_id, f"no audio path in {args.audio_list.name}"))
                continue
            names = [tag for tag, on in zip(tags, row, strict=True) if on]
            entries.append(InputRow(audio[track_id], split, track_id, track_id, names))
    return Prepared(
        task="multilabel",
        vocabulary=tags,
        rows=entries,
        skipped=skipped,
        description=f"MSD Last.fm top-{len(tags)} tags, split of Choi et al. 2016",
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = make_parser("python -m data_prep.datasets.msd", __doc__)
    parser.add_argument("--audio_list", type=Path, required=True, help="track_id,path CSV/TSV")
    parser.add_argument("--tags", type=Path, required=True, help="tag names, one per line")
    for split in SPLITS:
        parser.add_argument(
            f"--{split}_ids", type=Path, required=True, help=f"{split}_x_msd_id.txt"
        )
        parser.add_argument(f"--{split}_labels", type=Path, required=True, help=f"{split}_y.npy")
    return run_adapter(parser, prepare, argv)


if __name__ == "__main__":
    sys.exit(main())
