"""Emomusic (1000 Songs) static arousal/valence: ``python -m data_prep.datasets.emomusic --root EMO --out OUT``.

``--root`` holds the official distribution unpacked: ``clips_45seconds/<song_id>.mp3``
and the annotation CSVs ``static_annotations.csv`` (``song_id, mean_arousal,
std_arousal, mean_valence, std_valence``, means on the 1-9 scale) and
``songs_info.csv`` (``song_id, ..., Artist, ..., Mediaeval 2013 set``), either in
``annotations/`` or in ``--root`` itself (or ``--annotations_dir``). The
annotated, de-duplicated set has 744 songs.

Task: regression, targets ``[arousal, valence]``. By default they are
standardised with the mean and (population) standard deviation of the non-test
songs, as JukeMIR does; ``task.json`` records both, so raw = z * std + mean.
``--targets raw`` keeps the 1-9 means. R^2 is the same either way.

Split: ``--split_file`` (one ``song_id,split`` per line, split in train / valid
/ test; a header line is allowed), or by default the JukeMIR-style split: the
MediaEval 2013 ``evaluation`` songs are test, and about ``--valid_fraction`` of
the ``development`` songs go to valid by a hash of the artist, so no artist
straddles train and valid.
"""

from __future__ import annotations

import argparse
import csv
import math
import re
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from data_prep.core.flags import fraction
from data_prep.core.rows import InputRow
from data_prep.datasets.adapter import Prepared, Skipped, make_parser, run_adapter
from data_prep.datasets.metadata import (
    SPLITS,
    MetadataError,
    read_lines,
    require_file,
    stable_fraction,
)

TARGETS = ("arousal", "valence")
SCALE = (1.0, 9.0)


def read_csv(path: Path, what: str, columns: Sequence[str]) -> list[tuple[int, dict[str, str]]]:
    """``(line, row)`` per data row, header names and values stripped; ``columns`` must exist."""
    require_file(path, what)
    with open(path, encoding="utf-8-sig", newline="") as file:
        reader = csv.reader(file)
        header = [name.strip() for name in next(reader, [])]
        missing = [name for name in columns if name not in header]
        if missing:
            raise MetadataError(path, f"header lacks {', '.join(missing)}", 1)
        rows = []
        for fields in reader:
            if not any(field.strip() for field in fields):
                continue
            values = [field.strip() for field in fields]
            if any(values[len(header) :]):  # short rows are padded; their checks come later
                raise MetadataError(
                    path,
                    f"expected {len(header)} comma-separated fields, got {len(fields)}",
                    reader.line_num,
                )
            values += [""] * (len(header) - len(values))
            rows.append((reader.line_num, dict(zip(header, values, strict=False))))
    return rows


def _song_id(path: Path, line: int, text: str) -> int:
    try:
        return int(float(text))  # some exports write 2.0
    except ValueError:
        raise MetadataError(path, f"song_id {text!r} is not a number", line) from None


def read_static(path: Path) -> dict[int, tuple[int, list[float]]]:
    """song_id -> ``(line, [mean_arousal, mean_valence])``."""
    songs: dict[int, tuple[int, list[float]]] = {}
    for line, row in read_csv(
        path, "static_annotations.csv", ["song_id", "mean_arousal", "mean_valence"]
    ):
        song = _song_id(path, line, row["song_id"])
        if song in songs:
            raise MetadataError(path, f"song_id {song} repeats line {songs[song][0]}", line)
        try:
            values = [float(row["mean_arousal"]), float(row["mean_valence"])]
        except ValueError:
            raise MetadataError(
                path, "mean_arousal and mean_valence must be numbers", line
            ) from None
        if not all(math.isfinite(v) and SCALE[0] <= v <= SCALE[1] for v in values):
            raise MetadataError(path, f"means {values} are outside the 1-9 scale", line)
        songs[song] = (line, values)
    return songs


def mediaeval_split(path: Path, songs: set[int], fraction: float) -> dict[int, str]:
    """The JukeMIR-style split from ``songs_info.csv``: evaluation = test, development by artist."""
    rows = read_csv(path, "songs_info.csv", ["song_id", "Artist"])
    column = (
        next((name for name in rows[0][1] if "mediaeval" in name.lower()), None) if rows else None
    )
    if column is None:
        raise MetadataError(path, "no 'Mediaeval 2013 set' column (or give --split_file)", 1)
    splits = {}
    for line, row in rows:
        song, subset = _song_id(path, line, row["song_id"]), row[column].lower()
        if subset not in ("development", "evaluation"):
            raise MetadataError(
                path, f"{column} must be development or evaluation, got {subset!r}", line
            )
        artist = " ".join(re.sub(r"[^a-z ]", "", row["Artist"].lower()).split())
        if subset == "evaluation":
            splits[song] = "test"
        else:
            splits[song] = (
                "valid" if stable_fraction(f"emomusic-valid:{artist}") < fraction else "train"
            )
    missing = sorted(songs - splits.keys())
    if missing:
        raise MetadataError(path, f"song_id {missing[0]} (static annotations) has no row here")
    return splits


def read_split_file(path: Path) -> dict[int, str]:
    """song_id -> split from lines ``song_id,split`` (comma, tab or space separated)."""
    splits: dict[int, str] = {}
    for line, text in read_lines(path, "split file"):
        fields = re.split(r"[,\t ]+", text)
        if line == 1 and not fields[0].replace(".", "").isdigit():
            continue  # header
        if len(fields) != 2 or fields[1] not in SPLITS:
            raise MetadataError(
                path, f"expected 'song_id,split' with split in {SPLITS}, got {text!r}", line
            )
        song = _song_id(path, line, fields[0])
        if song in splits:
            raise MetadataError(path, f"song_id {song} is listed twice", line)
        splits[song] = fields[1]
    return splits


def standardise(entries: list[InputRow], source: Path) -> dict[str, list[float]]:
    """Standardise targets in place with the non-test songs' statistics; returns them."""
    fit = np.array([entry.targets for entry in entries if entry.split != "test"], dtype=np.float64)
    if not len(fit):
        raise MetadataError(source, "no train or valid songs to standardise the targets with")
    mean, std = fit.mean(axis=0), fit.std(axis=0)  # population std, as JukeMIR
    std[std == 0] = 1.0
    for entry in entries:
        entry.targets = ((np.array(entry.targets) - mean) / std).tolist()
    return {"target_mean": mean.tolist(), "target_std": std.tolist()}


def prepare(args: argparse.Namespace) -> Prepared:
    folder = args.annotations_dir
    if folder is None:
        folder = args.root / "annotations"
        folder = folder if (folder / "static_annotations.csv").is_file() else args.root
    static = read_static(folder / "static_annotations.csv")
    if args.split_file is not None:
        split_source = args.split_file
        splits = read_split_file(split_source)
    else:
        split_source = folder / "songs_info.csv"
        splits = mediaeval_split(split_source, set(static), args.valid_fraction)
    entries, skipped = [], []
    for song, (_, values) in sorted(static.items()):
        audio = args.root / "clips_45seconds" / f"{song}.mp3"
        if song not in splits:
            skipped.append(Skipped(f"clips_45seconds/{song}.mp3", "not in the split file"))
            continue
        entries.append(InputRow(audio, splits[song], f"{song:04d}", str(song), [], list(values)))
    notes: dict = {"targets": args.targets, "scale": list(SCALE)}
    if args.targets == "standardized":
        notes |= standardise(entries, split_source)
    return Prepared(
        task="regression",
        vocabulary=list(TARGETS),
        rows=entries,
        skipped=skipped,
        description=f"Emomusic static arousal/valence ({args.targets})",
        notes=notes,
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = make_parser("python -m data_prep.datasets.emomusic", __doc__)
    parser.add_argument("--annotations_dir", type=Path, help="default: ROOT/annotations or ROOT")
    parser.add_argument("--split_file", type=Path, help="song_id,split per line")
    parser.add_argument("--valid_fraction", type=fraction, default=0.2, help="(default: 0.2)")
    parser.add_argument("--targets", choices=["standardized", "raw"], default="standardized")
    return run_adapter(parser, prepare, argv)


if __name__ == "__main__":
    sys.exit(main())
