"""GiantSteps key (24 classes): ``python -m data_prep.datasets.giantsteps --root GS_KEY [--mtg_root GS_MTG] --out OUT``.

Test set: the GiantSteps Key dataset (604 two-minute Beatport previews),
``--root`` = a checkout of ``giantsteps-key-dataset`` with the audio fetched:
``annotations/key/<id>.LOFI.key`` (one line such as ``Bb major``) and
``audio/<id>.LOFI.mp3`` (or ``.wav`` after ``convert_audio.sh``).

Train and valid (optional): the GiantSteps MTG Key dataset, ``--mtg_root`` =
a checkout of ``giantsteps-mtg-key-dataset`` with ``annotations/annotations.txt``
(tab-separated ``ID  MANUAL KEY  C``; C = annotator confidence 0-2; keys such as
``-`` or ``A minor / F# minor`` where no single key applies),
``annotations/beatport_metadata.txt`` (tab-separated, with ``ID`` and ``ARTIST``)
and ``audio/<id>.LOFI.mp3``. As in JukeMIR (after Korzeniowski & Widmer 2018),
only tracks with confidence 2 and a single key are kept. Validation is carved
deterministically from them by artist: artists linked by a shared track form a
group, and a hash of the group puts about ``--valid_fraction`` of it in valid.

Key names are normalised to the 24 sharp spellings ``C major`` .. ``B minor``
(``Bb major`` -> ``A# major``), in the order of :data:`lit_mrl.formats.keys.KEY_NAMES`.
"""

from __future__ import annotations

import argparse
import csv
import sys
from collections.abc import Sequence
from pathlib import Path

from data_prep.core.flags import fraction, nonnegative_int
from data_prep.core.rows import InputRow
from data_prep.datasets.adapter import Prepared, Skipped, make_parser, run_adapter
from data_prep.datasets.metadata import MetadataError, read_lines, require_file, stable_fraction
from lit_mrl.formats.keys import KEY_NAMES, key_index

AUDIO_SUFFIXES = (".mp3", ".wav")


def canonical_key(text: str) -> str | None:
    """``"Bb major"`` -> ``"A# major"``; None if ``text`` is not one key (``-``, ``A minor / C major``)."""
    try:
        return KEY_NAMES[key_index(text)]
    except ValueError:
        return None


def find_audio(folder: Path, stem: str) -> Path:
    """``folder/<stem>.mp3`` or ``.wav``, whichever exists (the ``.mp3`` path if neither)."""
    candidates = [folder / f"{stem}{suffix}" for suffix in AUDIO_SUFFIXES]
    return next((path for path in candidates if path.is_file()), candidates[0])


def test_entries(root: Path) -> list[InputRow]:
    """The GiantSteps Key test set: one entry per ``annotations/key/*.key`` file."""
    folder = root / "annotations" / "key"
    paths = sorted(folder.glob("*.key"))
    if not paths:
        raise MetadataError(folder, "no .key files (expected annotations/key/<id>.LOFI.key)")
    entries = []
    for path in paths:
        lines = read_lines(path, "key annotation")
        if not lines:
            raise MetadataError(path, "empty key annotation", 1)
        line, text = lines[0]
        key = canonical_key(text)
        if key is None:
            raise MetadataError(path, f"expected a key such as 'Bb major', got {text!r}", line)
        stem = path.name.removesuffix(".key")
        track_id = stem.split(".")[0]
        audio = find_audio(root / "audio", stem)
        entries.append(InputRow(audio, "test", track_id, track_id, [key]))
    return entries


def read_mtg_annotations(path: Path) -> list[tuple[int, str, str, int]]:
    """``(line, track id, MANUAL KEY text, confidence)`` per row of ``annotations.txt``."""
    require_file(path, "GiantSteps MTG annotations.txt")
    with open(path, encoding="utf-8", newline="") as file:
        reader = csv.reader(file, delimiter="\t")
        header = [name.strip() for name in next(reader, [])]
        if header[:3] != ["ID", "MANUAL KEY", "C"]:
            raise MetadataError(path, "expected the header 'ID<TAB>MANUAL KEY<TAB>C'", 1)
        rows, seen = [], {}
        for fields in reader:
            if not any(field.strip() for field in fields):
                continue
            line = reader.line_num
            if len(fields) < 3:
                raise MetadataError(
                    path, f"expected 3 tab-separated fields, got {len(fields)}", line
                )
            try:
                track_id, confidence = str(int(fields[0])), int(fields[2])
            except ValueError:
                raise MetadataError(path, "ID and C must be integers", line) from None
            if track_id in seen:
                raise MetadataError(path, f"ID {track_id} repeats line {seen[track_id]}", line)
            seen[track_id] = line
            rows.append((line, track_id, fields[1].strip(), confidence))
    return rows


def read_artists(path: Path) -> dict[str, list[str]]:
    """Track id -> artist names, from ``beatport_metadata.txt`` (empty if the file is absent)."""
    if not path.is_file():
        return {}
    with open(path, encoding="utf-8", newline="") as file:
        reader = csv.DictReader(file, delimiter="\t")
        if not {"ID", "ARTIST"} <= set(reader.fieldnames or []):
            raise MetadataError(path, "expected tab-separated columns including ID and ARTIST", 1)
        artists = {}
        for row in reader:
            try:
                track_id = str(int(row["ID"]))
            except (TypeError, ValueError):
                raise MetadataError(
                    path, f"ID {row['ID']!r} is not an integer", reader.line_num
                ) from None
            names = [name.strip().lower() for name in (row["ARTIST"] or "").split(",")]
            artists[track_id] = [name for name in names if name] or [f"track:{track_id}"]
    return artists


def valid_tracks(track_ids: list[str], artists: dict[str, list[str]], fraction: float) -> set[str]:
    """The tracks whose artist group hashes below ``fraction``; a group never straddles splits."""
    parent: dict[str, str] = {}

    def find(name: str) -> str:
        parent.setdefault(name, name)
        while parent[name] != name:
            parent[name] = parent[parent[name]]
            name = parent[name]
        return name

    groups = {track_id: artists.get(track_id, [f"track:{track_id}"]) for track_id in track_ids}
    for names in groups.values():
        for name in names[1:]:
            a, b = find(names[0]), find(name)
            parent[max(a, b)] = min(a, b)  # the root is the group's smallest name: order-free
    return {
        track_id
        for track_id, names in groups.items()
        if stable_fraction(f"giantsteps-valid:{find(names[0])}") < fraction
    }


def train_entries(
    mtg_root: Path, test_ids: set[str], min_confidence: int, fraction: float
) -> tuple[list[InputRow], list[Skipped]]:
    """Train and valid entries from the GiantSteps MTG Key dataset."""
    annotations = mtg_root / "annotations" / "annotations.txt"
    kept, skipped = [], []
    for _, track_id, text, confidence in read_mtg_annotations(annotations):
        key = canonical_key(text)
        where = f"audio/{track_id}.LOFI.mp3"
        if confidence < min_confidence:
            skipped.append(Skipped(where, f"confidence {confidence} below {min_confidence}"))
        elif key is None:
            skipped.append(Skipped(where, f"no single key ({text!r})"))
        elif track_id in test_ids:
            skipped.append(Skipped(where, "also in the GiantSteps Key test set"))
        else:
            kept.append((track_id, key))
    artists = read_artists(mtg_root / "annotations" / "beatport_metadata.txt")
    valid = valid_tracks([track_id for track_id, _ in kept], artists, fraction)
    entries = [
        InputRow(
            find_audio(mtg_root / "audio", f"{track_id}.LOFI"),
            "valid" if track_id in valid else "train",
            track_id,
            track_id,
            [key],
        )
        for track_id, key in kept
    ]
    return entries, skipped


def prepare(args: argparse.Namespace) -> Prepared:
    entries, skipped = test_entries(args.root), []
    if args.mtg_root is not None:
        test_ids = {entry.track_id for entry in entries}
        train, skipped = train_entries(
            args.mtg_root, test_ids, args.min_confidence, args.valid_fraction
        )
        entries = train + entries
    return Prepared(
        task="multiclass",
        vocabulary=list(KEY_NAMES),
        rows=entries,
        skipped=skipped,
        description="GiantSteps key (24 classes); train/valid from GiantSteps MTG Key",
        notes={"min_confidence": args.min_confidence, "valid_fraction": args.valid_fraction},
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = make_parser("python -m data_prep.datasets.giantsteps", __doc__)
    parser.add_argument("--mtg_root", type=Path, help="giantsteps-mtg-key-dataset (train/valid)")
    parser.add_argument(
        "--min_confidence", type=nonnegative_int, default=2, help="0, 1 or 2 (default: 2)"
    )
    parser.add_argument("--valid_fraction", type=fraction, default=0.15, help="(default: 0.15)")
    return run_adapter(parser, prepare, argv)


if __name__ == "__main__":
    sys.exit(main())
