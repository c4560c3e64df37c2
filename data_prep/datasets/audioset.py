"""AudioSet (527 classes, multi-label): ``python -m data_prep.datasets.audioset --root AUDIOSET --out OUT``.

``--root`` holds the official metadata: ``class_labels_indices.csv`` (``index,mid,
display_name``), ``balanced_train_segments.csv``, ``unbalanced_train_segments.csv`` and
``eval_segments.csv`` (``#`` comment lines, then ``YTID, start_seconds, end_seconds,
"positive_labels"`` with the labels a quoted, comma-separated list of MIDs such as
``/m/09x0r``). Google distributes no audio: ``--audio_dir`` (default ``--root``) is the
folder your downloader filled, searched recursively. A segment's file is found by its
name, in any audio format lit_mrl reads (``.m4a``/``.webm`` need the ``lit_mrl[ffmpeg]``
extra): ``{YTID}.{ext}``, ``{YTID}_{start}.{ext}``, ``{YTID}_{start}_{end}.{ext}`` (times
as ``30``, ``30.000`` or milliseconds ``30000``), each also with a leading ``Y``
(``Y{YTID}.wav``, as some mirrors name them). A name whose times differ from the CSV's is
left out (``skipped.jsonl``); so are extra files of one segment.

Labels: the classes in ``class_labels_indices.csv`` order, named by ``display_name``
(``--label_names mid`` for the MIDs; a display name that repeats gets its MID in
brackets). Splits: balanced_train and unbalanced_train are ``train`` (``--balanced_only``:
the balanced one alone), eval is ``test``; ``valid`` is carved from train, the segments
whose YTID hashes below ``--valid_fraction`` (sha256 of ``audioset-valid:<YTID>``), so
it never changes with the download. ``--subtree MID`` (e.g. ``/m/04rlf``, Music) keeps
the classes under that node of ``ontology.json`` (``--ontology``, default
``ROOT/ontology.json``) and the segments with one of them.

Listed segments without a file are normal (videos leave YouTube): they are counted and
listed in ``OUT/missing.csv``, not treated as failures. Files that do not decode are
listed in ``errors.jsonl`` (exit status 1). Licence: the labels and CSVs are Google's,
CC BY 4.0; the ontology CC BY-SA 4.0; the audio belongs to the videos' owners.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import os
import re
import sys
from collections.abc import Container, Sequence
from pathlib import Path
from typing import NamedTuple

from data_prep.core.flags import fraction
from data_prep.core.rows import InputRow
from data_prep.datasets.adapter import Missing, Prepared, Skipped, make_parser, run_adapter
from data_prep.datasets.metadata import MetadataError, require_file, stable_fraction
from lit_mrl.formats.containers import AUDIO_EXTENSIONS

CSVS = {"balanced_train": "train", "unbalanced_train": "train", "eval": "test"}
_YTID = re.compile(r"[A-Za-z0-9_-]+")
_TIME = re.compile(r"_(\d+(?:\.\d+)?)$")  # "_30", "_30.000" at the end of a name


class Segment(NamedTuple):
    """One row of a ``*_segments.csv``."""

    where: str
    ytid: str
    start: float
    end: float
    mids: list[str]
    csv: str


def read_classes(path: Path) -> list[tuple[str, str]]:
    """``(mid, display_name)`` per class of ``class_labels_indices.csv``, in index order."""
    require_file(path, "AudioSet class_labels_indices.csv")
    with open(path, encoding="utf-8-sig", newline="") as file:
        reader = csv.reader(file)
        if [name.strip() for name in next(reader, [])] != ["index", "mid", "display_name"]:
            raise MetadataError(path, "expected the header 'index,mid,display_name'", 1)
        classes, seen = [], {}
        for fields in reader:
            if not any(field.strip() for field in fields):
                continue
            line = reader.line_num
            if len(fields) != 3 or fields[0].strip() != str(len(classes)):
                raise MetadataError(path, f"expected '{len(classes)},<mid>,<name>'", line)
            mid, name = fields[1].strip(), fields[2].strip()
            if mid in seen:
                raise MetadataError(path, f"MID {mid} repeats line {seen[mid]}", line)
            seen[mid] = line
            classes.append((mid, name))
    if not classes:
        raise MetadataError(path, "no classes")
    return classes


def read_segments(path: Path, name: str, mids: set[str]) -> list[Segment]:
    """The segments of one ``*_segments.csv``, each checked."""
    text = require_file(path, f"AudioSet {path.name}").read_text(encoding="utf-8-sig")
    segments = []
    for line, row in enumerate(text.splitlines(), 1):
        if not row.strip() or row.lstrip().startswith("#"):
            continue
        fields = next(csv.reader([row], skipinitialspace=True))
        if len(fields) != 4:
            raise MetadataError(
                path, f'expected YTID, start, end, "labels" (4 fields), got {len(fields)}', line
            )
        ytid, start, end, labels = (field.strip() for field in fields)
        if not _YTID.fullmatch(ytid):
            raise MetadataError(path, f"YTID {ytid!r} is not [A-Za-z0-9_-]+", line)
        try:
            start_s, end_s = float(start), float(end)
        except ValueError:
            raise MetadataError(path, f"times {start!r}, {end!r} are not numbers", line) from None
        if not (math.isfinite(start_s) and math.isfinite(end_s) and 0 <= start_s < end_s):
            raise MetadataError(path, f"times {start}-{end} are not 0 <= start < end", line)
        labels = [mid.strip() for mid in labels.split(",") if mid.strip()]
        unknown = [mid for mid in labels if mid not in mids]
        if not labels or unknown:
            problem = f"unknown label {unknown[0]!r}" if unknown else "no labels"
            raise MetadataError(path, f"{problem} (not in class_labels_indices.csv)", line)
        segments.append(Segment(f"{path.name}:{line}", ytid, start_s, end_s, labels, name))
    return segments


def parse_name(stem: str, listed: Container[str]) -> tuple[str, float | None, float | None] | None:
    """``(YTID, start, end)`` that a file name stands for (times None if absent), or None.

    ``a_b_30_40`` is tried as YTID ``a_b_30_40``, then ``a_b_30`` (start 40), then ``a_b``
    (30-40), each with and without a leading ``Y``: YTIDs may hold ``_`` themselves.
    """
    candidates: list[tuple[str, float | None, float | None]] = [(stem, None, None)]
    head, times = stem, []
    for _ in range(2):
        match = _TIME.search(head)
        if match is None:
            break
        head, times = head[: match.start()], [float(match[1]), *times]
        candidates.append((head, times[0], times[1] if len(times) > 1 else None))
    for ytid, start, end in candidates:
        for name in (ytid, ytid[1:] if ytid.startswith("Y") else ""):
            if name and name in listed:
                return name, start, end
    return None


def times_agree(named: float | None, listed: float) -> bool:
    """Whether a time in a file name (seconds or milliseconds) is the CSV's."""
    return named is None or abs(named - listed) < 1e-3 or abs(named / 1000 - listed) < 1e-3


def find_audio(
    folder: Path, segments: dict[str, Segment], skip: Path
) -> tuple[dict[str, Path], list[Skipped]]:
    """YTID -> its file under ``folder``, and the files left out (times that differ, extras)."""
    found: dict[str, list[Path]] = {}
    skipped = []
    for parent, subfolders, files in os.walk(folder):
        subfolders[:] = sorted(d for d in subfolders if Path(parent, d).resolve() != skip)
        for name in sorted(files):
            path = Path(parent, name)
            if path.suffix.lower() not in AUDIO_EXTENSIONS:
                continue
            parsed = parse_name(path.name[: -len(path.suffix)], segments.keys())
            if parsed is None:
                continue
            ytid, start, end = parsed
            segment = segments[ytid]
            if times_agree(start, segment.start) and times_agree(end, segment.end):
                found.setdefault(ytid, []).append(path)
            else:
                reason = f"times in the name differ from {segment.where} ({segment.start:g}-{segment.end:g} s)"
                skipped.append(Skipped(str(path), reason))
    chosen = {}
    for ytid, paths in found.items():
        chosen[ytid] = paths[0]
        skipped += [
            Skipped(str(p), f"another file of segment {ytid} is used: {paths[0]}")
            for p in paths[1:]
        ]
    return chosen, skipped


def subtree(path: Path, root_mid: str) -> set[str]:
    """The MIDs under ``root_mid`` in ``ontology.json`` (itself included)."""
    require_file(path, "AudioSet ontology.json (for --subtree)")
    try:
        nodes = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, RecursionError, UnicodeDecodeError) as err:
        raise MetadataError(path, f"not valid JSON ({err})") from None
    if not isinstance(nodes, list) or not all(
        isinstance(n, dict)
        and isinstance(n.get("id"), str)
        and isinstance(n.get("child_ids", []), list)
        for n in nodes
    ):
        raise MetadataError(path, "expected a list of objects with 'id' and 'child_ids'")
    children = {node["id"]: [str(c) for c in node.get("child_ids", [])] for node in nodes}
    if root_mid not in children:
        raise MetadataError(path, f"--subtree {root_mid} is not an id of the ontology")
    found, todo = set(), [root_mid]
    while todo:  # the ontology is a graph; a node may have several parents
        mid = todo.pop()
        if mid not in found:
            found.add(mid)
            todo += children.get(mid, [])
    return found


def label_names(classes: list[tuple[str, str]], kind: str) -> dict[str, str]:
    """MID -> label name: the MID itself, or the display name (with its MID if it repeats)."""
    if kind == "mid":
        return {mid: mid for mid, _ in classes}
    counts: dict[str, int] = {}
    for _, name in classes:
        counts[name] = counts.get(name, 0) + 1
    return {mid: name if counts[name] == 1 else f"{name} ({mid})" for mid, name in classes}


def read_listed(
    args: argparse.Namespace, mids: set[str]
) -> tuple[dict[str, Segment], list[Skipped]]:
    """YTID -> segment over the CSVs used; a YTID listed twice keeps its first row."""
    segments: dict[str, Segment] = {}
    skipped = []
    for name in CSVS:
        if args.balanced_only and name == "unbalanced_train":
            continue
        for segment in read_segments(args.root / f"{name}_segments.csv", name, mids):
            first = segments.setdefault(segment.ytid, segment)
            if first is not segment:
                skipped.append(
                    Skipped(segment.where, f"{segment.ytid} is also listed at {first.where}")
                )
    return segments, skipped


def prepare(args: argparse.Namespace) -> Prepared:
    classes = read_classes(args.root / "class_labels_indices.csv")
    names = label_names(classes, args.label_names)
    segments, skipped = read_listed(args, {mid for mid, _ in classes})
    kept = None
    if args.subtree is not None:
        kept = subtree(args.ontology or args.root / "ontology.json", args.subtree)
        classes = [(mid, name) for mid, name in classes if mid in kept]
        if not classes:
            raise MetadataError(
                args.root / "class_labels_indices.csv", f"no class under {args.subtree}"
            )
    audio_dir = args.audio_dir or args.root
    if not audio_dir.is_dir():
        raise MetadataError(audio_dir, "no such folder (--audio_dir: the downloaded segments)")
    files, extra = find_audio(audio_dir, segments, args.out.resolve())
    rows, missing, outside = [], [], 0
    for ytid, segment in segments.items():
        labels = [names[mid] for mid in segment.mids if kept is None or mid in kept]
        if not labels:
            outside += 1
            continue
        split = CSVS[segment.csv]
        if split == "train" and stable_fraction(f"audioset-valid:{ytid}") < args.valid_fraction:
            split = "valid"
        if ytid not in files:
            missing.append(
                Missing(ytid, split, f"{audio_dir}/**/[Y]{ytid}[_<start>[_<end>]].<audio>")
            )
            continue
        meta = {"csv": segment.csv, "start_seconds": segment.start, "end_seconds": segment.end}
        rows.append(InputRow(files[ytid], split, ytid, ytid, labels, meta=meta))
    if outside:
        print(f"--subtree {args.subtree}: {outside} segments have no class under it, left out")
    return Prepared(
        task="multilabel",
        vocabulary=[names[mid] for mid, _ in classes],
        rows=rows,
        skipped=skipped + extra,
        missing=missing,
        description=f"AudioSet {'balanced' if args.balanced_only else 'full'}: {len(classes)} classes",
        notes={"balanced_only": args.balanced_only, "valid_fraction": args.valid_fraction,
               "label_names": args.label_names, "subtree": args.subtree, "outside_subtree": outside},
    )  # fmt: skip


def main(argv: Sequence[str] | None = None) -> int:
    parser = make_parser("python -m data_prep.datasets.audioset", __doc__)
    add = parser.add_argument
    add(
        "--audio_dir",
        type=Path,
        help="the downloaded segments, searched recursively (default: ROOT)",
    )
    add(
        "--balanced_only", action="store_true", help="train on balanced_train alone (no unbalanced)"
    )
    add(
        "--valid_fraction",
        type=fraction,
        default=0.05,
        help="of train, by YTID hash (default: 0.05)",
    )
    add("--label_names", choices=["display_name", "mid"], default="display_name")
    add("--subtree", metavar="MID", help="keep the classes under this ontology node, e.g. /m/04rlf")
    add("--ontology", type=Path, help="ontology.json for --subtree (default: ROOT/ontology.json)")
    return run_adapter(parser, prepare, argv)


if __name__ == "__main__":
    sys.exit(main())
