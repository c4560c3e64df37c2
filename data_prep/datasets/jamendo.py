"""MTG-Jamendo auto-tagging or pre-training corpus: ``python -m data_prep.datasets.jamendo --root AUDIO --splits_dir SPLIT --out OUT``.

``--root`` holds the audio as unpacked from the official tars (``00/`` ..
``99/``, each with ``<id>.mp3``, or ``<id>.low.mp3`` with ``--low_quality``): full-length
tracks (``raw_30s``: every track of at least 30 s) or the ``autotagging_moodtheme`` part.

Tagging tasks: ``--splits_dir`` is one split folder of the metadata repository
(``mtg-jamendo-dataset/data/splits/split-0``), holding
``autotagging[_<subset>]-{train,validation,test}.tsv`` (``--subset`` top50, genre,
instrument, moodtheme or all). Tracks with no tag of the vocabulary are skipped.

Pre-training corpus: ``--tracks FILE`` instead, a whole-dataset list of the metadata
repository (``data/raw_30s.tsv``, ``data/autotagging.tsv``): every track it lists is
``train``, with all its tags (tracks without tags too); add ``--no_labels`` for a corpus
without labels (task ``none``; also works with ``--splits_dir``). ``--max_seconds``
caps long tracks; without it whole tracks are sharded (decoded a block at a time).

Each TSV line is ``TRACK_ID ARTIST_ID ALBUM_ID PATH DURATION TAGS`` where TAGS
is not one field but every remaining tab-separated field
(``genre---rock<TAB>instrument---piano<TAB>mood/theme---happy``). Labels are the
full tag strings; the vocabulary is every tag seen in the files read, sorted,
or ``--tags FILE`` (one per line, other tags dropped).

Licence: the metadata is CC BY-NC-SA 4.0; each track's audio is under its own Creative
Commons licence (set by the artist on Jamendo; see the dataset's licence notes).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from data_prep.core.rows import InputRow
from data_prep.datasets.adapter import Prepared, Skipped, make_parser, run_adapter
from data_prep.datasets.metadata import MetadataError, read_vocabulary, require_file
from lit_mrl.errors import UsageError

SUBSET_FILES = {
    "top50": "autotagging_top50tags",
    "genre": "autotagging_genre",
    "instrument": "autotagging_instrument",
    "moodtheme": "autotagging_moodtheme",
    "all": "autotagging",
}
FILE_SPLITS = {"train": "train", "validation": "valid", "test": "test"}
HEADER = ["TRACK_ID", "ARTIST_ID", "ALBUM_ID", "PATH", "DURATION", "TAGS"]
CATEGORIES = ("genre", "instrument", "mood/theme")


def read_split(path: Path) -> list[tuple[int, str, str, list[str]]]:
    """``(line, track_id, audio path, tags)`` per track of one split TSV."""
    lines = require_file(path, "MTG-Jamendo split file").read_text(encoding="utf-8").splitlines()
    if not lines or lines[0].rstrip("\r").split("\t") != HEADER:
        raise MetadataError(path, f"expected the header {' '.join(HEADER)} (tab-separated)", 1)
    rows = []
    for number, text in enumerate(lines[1:], 2):
        if not text.strip():
            continue
        fields = text.rstrip("\r").split("\t")
        if len(fields) < len(HEADER) - 1:  # a track may have no tag: TAGS is the rest
            raise MetadataError(
                path,
                f"expected at least {len(HEADER) - 1} tab-separated fields, got {len(fields)}",
                number,
            )
        track_id, _, _, audio, duration, *tags = (field.strip() for field in fields)
        if not track_id.startswith("track_") or not audio.endswith(".mp3"):
            raise MetadataError(
                path, f"expected 'track_<id> ... <dd>/<id>.mp3', got {text!r}", number
            )
        try:
            float(duration)
        except ValueError:
            raise MetadataError(path, f"DURATION {duration!r} is not a number", number) from None
        tags = list(dict.fromkeys(tag for tag in tags if tag))
        for tag in tags:
            category, _, name = tag.partition("---")
            if category not in CATEGORIES or not name:
                raise MetadataError(path, f"tag {tag!r} is not '<category>---<name>'", number)
        rows.append((number, track_id, audio, tags))
    return rows


def read_lists(args: argparse.Namespace) -> dict[str, list[tuple[int, str, str, list[str]]]]:
    """The rows of the TSVs, by split: the three split files, or ``--tracks`` as train."""
    if args.tracks is not None:
        if args.subset is not None:
            raise UsageError("--subset applies to --splits_dir, not --tracks")
        return {"train": read_split(args.tracks)}
    stem = SUBSET_FILES[args.subset or "top50"]
    per_split, seen = {}, {}
    for file_split, split in FILE_SPLITS.items():
        path = args.splits_dir / f"{stem}-{file_split}.tsv"
        per_split[split] = read_split(path)
        for number, track_id, *_ in per_split[split]:
            if track_id in seen:
                raise MetadataError(path, f"{track_id} is also listed at {seen[track_id]}", number)
            seen[track_id] = f"{path}:{number}"
    return per_split


def prepare(args: argparse.Namespace) -> Prepared:
    per_split = read_lists(args)
    if args.no_labels:
        vocabulary = []
    elif args.tags is not None:
        vocabulary = read_vocabulary(args.tags)
    else:
        vocabulary = sorted({tag for rows in per_split.values() for row in rows for tag in row[3]})
    known = set(vocabulary)
    corpus = args.tracks is not None or args.no_labels
    entries, skipped, seen = [], [], {}
    for split, rows in per_split.items():
        for number, track_id, audio, tags in rows:
            if track_id in seen:  # only --tracks can get here: the split files are checked
                raise MetadataError(
                    args.tracks, f"{track_id} repeats line {seen[track_id]}", number
                )
            seen[track_id] = number
            if args.low_quality:
                audio = audio.removesuffix(".mp3") + ".low.mp3"
            labels = [tag for tag in tags if tag in known]
            if not labels and not corpus:
                skipped.append(Skipped(audio, "no tag of the vocabulary"))
                continue
            entries.append(InputRow(args.root / audio, split, track_id, track_id, labels))
    source = (
        f"corpus {args.tracks.name}"
        if args.tracks is not None
        else f"{args.subset or 'top50'}, {args.splits_dir.name}"
    )
    return Prepared(
        task="none" if args.no_labels else "multilabel",
        vocabulary=vocabulary,
        rows=entries,
        skipped=skipped,
        description=f"MTG-Jamendo {source}: {len(vocabulary)} tags",
        notes={"subset": args.subset, "splits_dir": str(args.splits_dir), "tracks": str(args.tracks),
               "no_labels": args.no_labels},
    )  # fmt: skip


def main(argv: Sequence[str] | None = None) -> int:
    parser = make_parser("python -m data_prep.datasets.jamendo", __doc__)
    add = parser.add_argument
    lists = parser.add_mutually_exclusive_group(required=True)
    lists.add_argument(
        "--splits_dir", type=Path, help="e.g. mtg-jamendo-dataset/data/splits/split-0"
    )
    lists.add_argument(
        "--tracks", type=Path, help="corpus: every track of e.g. data/raw_30s.tsv, as train"
    )
    add("--subset", choices=list(SUBSET_FILES), help="with --splits_dir (default: top50)")
    add("--tags", type=Path, help="vocabulary, one tag per line (default: seen)")
    add("--no_labels", action="store_true", help="no tags: a corpus for pre-training (task none)")
    add("--low_quality", action="store_true", help="read <id>.low.mp3 (the audio-low release)")
    return run_adapter(parser, prepare, argv)


if __name__ == "__main__":
    sys.exit(main())
