"""MagnaTagATune top-50 tagging: ``python -m data_prep.datasets.mtat --root MTT --out shards/mtat``.

Reads the official distribution: ``annotations_final.csv`` (tab-separated
despite its name; every field in double quotes: ``clip_id``, 188 binary tag
columns, ``mp3_path``) and the mp3 folders ``0/`` .. ``f/`` (from
``mp3.zip.001-003``), either directly under ``--root`` or under ``--root/mp3``.

Split: the standard 12/1/3 split by the first hex digit of the mp3 folder
(``0``-``b`` train, ``c`` valid, ``d``-``f`` test). Vocabulary: the 50 most
frequent tags over all rows of the annotation file (ties keep the file's column
order), or the tags of ``--tags FILE`` in its order.
"""

from __future__ import annotations

import argparse
import csv
import re
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import NamedTuple

from data_prep.core.rows import InputRow
from data_prep.datasets.adapter import Prepared, Skipped, make_parser, run_adapter
from data_prep.datasets.metadata import MetadataError, read_lines, require_file

ANNOTATIONS = "annotations_final.csv"
NUM_TAGS = 50
# Three clips whose mp3 is 0 bytes in the official mp3.zip (JukeMIR and others drop them).
BROKEN_CLIPS = frozenset({35644, 55753, 57881})
SPLIT_OF_FOLDER = {**dict.fromkeys("0123456789ab", "train"), "c": "valid", **dict.fromkeys("def", "test")}  # fmt: skip
_MP3_PATH = re.compile(r"[0-9a-f]/[^/]+\.mp3")


class Clip(NamedTuple):
    """One row of ``annotations_final.csv``."""

    line: int
    clip_id: int
    mp3_path: str
    tags: list[str]


def read_annotations(path: Path) -> tuple[list[str], list[Clip]]:
    """Parse ``annotations_final.csv``.

    Returns:
        The 188 tag names in column order, and the clips.
    """
    require_file(path, f"MagnaTagATune {ANNOTATIONS}")
    with open(path, encoding="utf-8", newline="") as file:
        reader = csv.reader(file, delimiter="\t")
        header = next(reader, None)
        if not header or header[0].strip() != "clip_id" or header[-1].strip() != "mp3_path":
            raise MetadataError(path, "expected a header 'clip_id <tags...> mp3_path'", line=1)
        tags = [name.strip() for name in header[1:-1]]
        clips: dict[int, Clip] = {}
        for fields in reader:
            if not any(field.strip() for field in fields):
                continue
            clip = _parse_row(path, reader.line_num, fields, tags)
            if clip.clip_id in clips:
                line = clips[clip.clip_id].line
                raise MetadataError(path, f"clip_id {clip.clip_id} repeats line {line}", clip.line)
            clips[clip.clip_id] = clip
    return tags, list(clips.values())


def _parse_row(path: Path, line: int, fields: list[str], tags: list[str]) -> Clip:
    if len(fields) != len(tags) + 2:
        raise MetadataError(
            path, f"expected {len(tags) + 2} tab-separated fields, got {len(fields)}", line
        )
    try:
        clip_id = int(fields[0])
    except ValueError:
        raise MetadataError(path, f"clip_id {fields[0]!r} is not an integer", line) from None
    values = [value.strip() for value in fields[1:-1]]
    bad = next((value for value in values if value not in ("0", "1")), None)
    if bad is not None:
        raise MetadataError(path, f"tag values must be 0 or 1, got {bad!r}", line)
    mp3_path = fields[-1].strip()
    if not _MP3_PATH.fullmatch(mp3_path):
        raise MetadataError(path, f"mp3_path {mp3_path!r} is not '<hex digit>/<name>.mp3'", line)
    return Clip(line, clip_id, mp3_path, [t for t, v in zip(tags, values, strict=True) if v == "1"])


def top_tags(tags: list[str], clips: list[Clip], count: int) -> list[str]:
    """The ``count`` most frequent tags, most frequent first (ties: column order)."""
    frequency = dict.fromkeys(tags, 0)
    for clip in clips:
        for tag in clip.tags:
            frequency[tag] += 1
    return sorted(tags, key=lambda tag: -frequency[tag])[:count]


def read_tag_list(path: Path, columns: list[str], annotations: Path) -> list[str]:
    """A user's tag list, one per line, each checked against the annotation columns."""
    vocabulary = []
    for line, tag in read_lines(path, "tag list"):
        if tag not in columns:
            raise MetadataError(path, f"tag {tag!r} is not a column of {annotations}", line)
        if tag in vocabulary:
            raise MetadataError(path, f"tag {tag!r} is listed twice", line)
        vocabulary.append(tag)
    return vocabulary


def audio_folder(root: Path) -> Path:
    """``root/mp3`` when the zip was unpacked there, else ``root``."""
    return root / "mp3" if (root / "mp3" / "0").is_dir() else root


def prepare(args: argparse.Namespace) -> Prepared:
    annotations = args.annotations or args.root / ANNOTATIONS
    columns, clips = read_annotations(annotations)
    if args.tags is not None:
        vocabulary = read_tag_list(args.tags, columns, annotations)
    else:
        vocabulary = top_tags(columns, clips, NUM_TAGS)
    audio = audio_folder(args.root)
    entries, skipped = [], []
    for clip in clips:
        if clip.clip_id in BROKEN_CLIPS:
            skipped.append(
                Skipped(clip.mp3_path, "known empty (0-byte) mp3 in the official mp3.zip")
            )
            continue
        labels = [tag for tag in vocabulary if tag in clip.tags]
        if not labels and not args.keep_untagged:
            skipped.append(Skipped(clip.mp3_path, "no tag of the vocabulary (use --keep_untagged)"))
            continue
        entries.append(
            InputRow(
                path=audio / clip.mp3_path,
                split=SPLIT_OF_FOLDER[clip.mp3_path[0]],
                key=f"{clip.clip_id:05d}",
                track_id=str(clip.clip_id),
                labels=labels,
            )
        )
    return Prepared(
        task="multilabel",
        vocabulary=vocabulary,
        rows=entries,
        skipped=skipped,
        description=f"MagnaTagATune: {len(vocabulary)} tags, 12/1/3 split by mp3 folder",
        notes={"keep_untagged": args.keep_untagged},
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = make_parser("python -m data_prep.datasets.mtat", __doc__)
    parser.add_argument(
        "--annotations", type=Path, help=f"default: ROOT/{ANNOTATIONS} (tab-separated)"
    )
    parser.add_argument("--tags", type=Path, help="tag list, one per line (default: top 50)")
    parser.add_argument(
        "--keep_untagged",
        action="store_true",
        help="keep clips with none of the tags (JukeMIR's 25,860-clip protocol)",
    )
    return run_adapter(parser, prepare, argv)


if __name__ == "__main__":
    sys.exit(main())
