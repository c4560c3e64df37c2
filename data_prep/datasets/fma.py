"""Free Music Archive genres: ``python -m data_prep.datasets.fma --root FMA --labels top --out OUT``.

``--root`` holds ``fma_metadata/`` (``tracks.csv``, ``genres.csv``) and the audio as
unzipped: ``fma_full/``, ``fma_large/``, ``fma_medium/`` or ``fma_small/``, each with
``000/000002.mp3`` (the first of these that exists, or ``--audio_dir``; ``--metadata_dir``
overrides ``ROOT/fma_metadata``).

``tracks.csv`` has a 3-row header: the first two rows name each column (``set``,
``split``; ``track``, ``genre_top``; ...), the third holds ``track_id``. Used: ``set.split``
(``training`` / ``validation`` / ``test``: the official split), ``set.subset`` (``small``
within ``medium`` within ``large``: ``--subset`` keeps a subset and those inside it),
``track.genre_top`` and ``track.genres_all`` (a list literal such as ``[21, 12]``, read
as JSON, never evaluated). ``genres.csv`` (``genre_id,#tracks,parent,title,top_level``)
names the genres.

Labels: ``--labels top``: multiclass over the top-level genres the subset's tracks carry
(16 for medium and large, 8 for small), alphabetical; tracks without a ``genre_top``
(they span several top-level genres) are skipped and listed. ``--labels all``:
multilabel over every genre in ``genres_all`` (each track's genres and their parents),
named by title, in genre_id order.

Licence: the metadata is CC BY 4.0; each track is under the licence its artist chose
(Creative Commons for most; ``track.license`` in ``tracks.csv``).
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import NamedTuple

from data_prep.core.rows import InputRow
from data_prep.datasets.adapter import Prepared, Skipped, make_parser, run_adapter
from data_prep.datasets.metadata import MetadataError, require_file

SPLITS = {"training": "train", "validation": "valid", "test": "test"}
SUBSETS = ("small", "medium", "large")
AUDIO_FOLDERS = ("fma_full", "fma_large", "fma_medium", "fma_small")
COLUMNS = ("set.split", "set.subset", "track.genre_top", "track.genres_all")


class Track(NamedTuple):
    """The fields of one ``tracks.csv`` row that the tasks need."""

    track_id: int
    split: str
    subset: str
    genre_top: str
    genres_all: list[int]


class Genre(NamedTuple):
    """One ``genres.csv`` row."""

    genre_id: int
    parent: int
    title: str


def read_genres(path: Path) -> dict[int, Genre]:
    """genre_id -> genre, in file order."""
    require_file(path, "FMA genres.csv")
    with open(path, encoding="utf-8", newline="") as file:
        reader = csv.DictReader(file)
        if not {"genre_id", "parent", "title"} <= set(reader.fieldnames or []):
            raise MetadataError(
                path, "expected the header genre_id,#tracks,parent,title,top_level", 1
            )
        genres: dict[int, Genre] = {}
        for row in reader:
            try:
                genre = Genre(int(row["genre_id"]), int(row["parent"] or 0), row["title"].strip())
            except (TypeError, ValueError):
                raise MetadataError(
                    path, "genre_id and parent must be integers", reader.line_num
                ) from None
            if genre.genre_id in genres:
                raise MetadataError(path, f"genre_id {genre.genre_id} repeats", reader.line_num)
            genres[genre.genre_id] = genre
    return genres


def read_tracks(path: Path, genres: dict[int, Genre]) -> list[Track]:
    """The rows of ``tracks.csv``, each checked."""
    require_file(path, "FMA tracks.csv")
    with open(path, encoding="utf-8", newline="") as file:
        reader = csv.reader(file)
        top, sub, third = (next(reader, []) for _ in range(3))
        names = [f"{a}.{b}" for a, b in zip(top, sub, strict=False)]
        missing = [name for name in COLUMNS if name not in names]
        if third[:1] != ["track_id"] or missing:
            what = f"no column {missing[0]}" if missing else "row 3 does not start with track_id"
            raise MetadataError(
                path, f"{what} (expected the 3-row header of fma_metadata/tracks.csv)", 1
            )
        index = {name: names.index(name) for name in COLUMNS}
        tracks = []
        for fields in reader:
            if not any(field.strip() for field in fields):
                continue
            if len(fields) != len(names):
                raise MetadataError(
                    path, f"expected {len(names)} fields, got {len(fields)}", reader.line_num
                )
            tracks.append(_track(path, reader.line_num, fields, index, genres))
    return tracks


def _track(
    path: Path, line: int, fields: list[str], index: dict[str, int], genres: dict[int, Genre]
) -> Track:
    value = {name: fields[column].strip() for name, column in index.items()}
    try:
        track_id = int(fields[0])
    except ValueError:
        raise MetadataError(path, f"track_id {fields[0]!r} is not an integer", line) from None
    if value["set.split"] not in SPLITS or value["set.subset"] not in SUBSETS:
        raise MetadataError(
            path,
            f"set.split {value['set.split']!r} / set.subset {value['set.subset']!r} unknown",
            line,
        )
    try:
        genres_all = json.loads(value["track.genres_all"] or "[]")
    except (json.JSONDecodeError, RecursionError):
        genres_all = None
    if not isinstance(genres_all, list) or not all(type(g) is int for g in genres_all):
        raise MetadataError(
            path, f"track.genres_all {value['track.genres_all'][:40]!r} is not a list of ids", line
        )
    unknown = [g for g in genres_all if g not in genres]
    if unknown:
        raise MetadataError(path, f"genre {unknown[0]} is not in genres.csv", line)
    split = SPLITS[value["set.split"]]
    return Track(track_id, split, value["set.subset"], value["track.genre_top"], genres_all)


def genre_names(genres: dict[int, Genre]) -> dict[int, str]:
    """genre_id -> title, with the id in brackets where a title repeats."""
    titles = [genre.title for genre in genres.values()]
    return {
        g.genre_id: g.title if titles.count(g.title) == 1 else f"{g.title} ({g.genre_id})"
        for g in genres.values()
    }


def audio_folder(args: argparse.Namespace) -> Path:
    """``--audio_dir``, or the first FMA audio folder under ``--root``."""
    if args.audio_dir is not None:
        return args.audio_dir
    for name in AUDIO_FOLDERS:
        if (args.root / name).is_dir():
            return args.root / name
    raise MetadataError(args.root, f"no audio folder ({', '.join(AUDIO_FOLDERS)}; or --audio_dir)")


def prepare(args: argparse.Namespace) -> Prepared:
    metadata = args.metadata_dir or args.root / "fma_metadata"
    genres = read_genres(metadata / "genres.csv")
    tracks = read_tracks(metadata / "tracks.csv", genres)
    audio = audio_folder(args)
    print(f"audio: {audio}")
    kept = SUBSETS[: SUBSETS.index(args.subset) + 1]
    names = genre_names(genres)
    order = {genre_id: index for index, genre_id in enumerate(genres)}  # genres.csv order
    top_level = {genre.title for genre in genres.values() if genre.parent == 0}
    rows, skipped = [], []
    for track in tracks:
        if track.subset not in kept:
            continue
        name = f"{track.track_id:06d}"
        path = audio / name[:3] / f"{name}.mp3"
        if args.labels == "top":
            if not track.genre_top:
                skipped.append(
                    Skipped(str(path), "no top-level genre (several; --labels all uses genres_all)")
                )
                continue
            if track.genre_top not in top_level:
                raise MetadataError(
                    metadata / "tracks.csv",
                    f"track {track.track_id}: genre_top {track.genre_top!r} is no top-level genre of genres.csv",
                )
            labels = [track.genre_top]
        else:
            labels = [
                names[genre] for genre in sorted(set(track.genres_all), key=order.__getitem__)
            ]
            if not labels:
                skipped.append(Skipped(str(path), "no genre (track.genres_all is empty)"))
                continue
        rows.append(InputRow(path, track.split, name, str(track.track_id), labels))
    seen = {label for row in rows for label in row.labels}
    if args.labels == "top":
        vocabulary = sorted(seen)
    else:
        vocabulary = [names[g] for g in genres if names[g] in seen]
    return Prepared(
        task="multiclass" if args.labels == "top" else "multilabel",
        vocabulary=vocabulary,
        rows=rows,
        skipped=skipped,
        description=f"FMA {args.subset}: {len(vocabulary)} {'top-level ' * (args.labels == 'top')}genres, official split",
        notes={"subset": args.subset, "labels": args.labels, "audio_dir": str(audio)},
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = make_parser("python -m data_prep.datasets.fma", __doc__)
    add = parser.add_argument
    add("--labels", choices=["top", "all"], default="top", help="(default: top)")
    add("--subset", choices=list(SUBSETS), default="large", help="(default: large, every track)")
    add("--audio_dir", type=Path, help="the mp3 folders 000/..155/ (default: ROOT/fma_full, ...)")
    add("--metadata_dir", type=Path, help="tracks.csv and genres.csv (default: ROOT/fma_metadata)")
    return run_adapter(parser, prepare, argv)


if __name__ == "__main__":
    sys.exit(main())
