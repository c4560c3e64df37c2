"""GTZAN genre, fault-filtered split: ``python -m data_prep.datasets.gtzan --root GTZAN --out shards/gtzan ...``.

``--root`` holds ``genres/<genre>/<genre>.000NN.au`` as the original tarball
ships them, or ``.wav`` copies (``genres_original/``, as in the Kaggle copy, or
the genre folders directly, also work); both are read as they are, no conversion.

The split files are the fault-filtered lists of Kereliuk, Sturm & Larsen
(2015), as used by JukeMIR (443 / 197 / 290): one path per line relative to the
genre folders, e.g. ``blues/blues.00012.wav`` (``.wav`` or ``.au``, whichever the
folder holds is used). The label is the genre folder.
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Sequence
from pathlib import Path

from data_prep.core.rows import InputRow
from data_prep.datasets.adapter import Prepared, Skipped, make_parser, run_adapter
from data_prep.datasets.metadata import MetadataError, read_lines

GENRES = ("blues", "classical", "country", "disco", "hiphop", "jazz", "metal", "pop", "reggae", "rock")  # fmt: skip
# libsndfile cannot decode it in the common .wav copies (the Kaggle one included); an
# .au of it is left to the decoder, which reports it in errors.jsonl if it is broken too
BROKEN = {"jazz.00054": "known corrupt file in the GTZAN distribution (not decodable)"}
# a converted .wav first (what earlier manifests named), else the tarball's .au
SUFFIXES = (".wav", ".au")
_LINE = re.compile(r"(?:.*/)?([a-z]+)/\1\.(\d{5})\.(?:wav|au)")


def genre_folder(root: Path) -> Path:
    """The folder holding the ten genre folders."""
    for candidate in (root / "genres", root / "genres_original", root):
        if (candidate / "blues").is_dir():
            return candidate
    raise MetadataError(
        root, "no genres/<genre>/ folders (expected genres/blues/blues.00000.au or .wav)"
    )


def find_audio(folder: Path, genre: str, stem: str) -> str:
    """``<genre>/<stem>.wav`` or ``.au`` relative to ``folder``, whichever exists (``.wav`` if neither)."""
    candidates = [f"{genre}/{stem}{suffix}" for suffix in SUFFIXES]
    return next((name for name in candidates if (folder / name).is_file()), candidates[0])


def read_split_file(path: Path) -> list[tuple[int, str, str]]:
    """``(line, genre, stem)`` per listed file, e.g. ``(3, "blues", "blues.00012")``."""
    rows = []
    for line, text in read_lines(path, "GTZAN split file"):
        match = _LINE.fullmatch(text.replace("\\", "/"))
        if match is None:
            raise MetadataError(path, f"expected '<genre>/<genre>.000NN.wav', got {text!r}", line)
        genre = match.group(1)
        if genre not in GENRES:
            raise MetadataError(path, f"unknown genre {genre!r} (not one of the 10)", line)
        rows.append((line, genre, f"{genre}.{match.group(2)}"))
    return rows


def prepare(args: argparse.Namespace) -> Prepared:
    folder = genre_folder(args.root)
    split_files = {"train": args.train_split, "valid": args.valid_split, "test": args.test_split}
    entries, skipped, seen = [], [], {}
    for split, path in split_files.items():
        for line, genre, stem in read_split_file(path):
            where = f"{path}:{line}"
            if stem in seen:
                raise MetadataError(path, f"{stem} is also listed at {seen[stem]}", line)
            seen[stem] = where
            relative = find_audio(folder, genre, stem)
            if stem in BROKEN and relative.endswith(".wav"):
                skipped.append(Skipped(relative, BROKEN[stem]))
                continue
            key = stem.replace(".", "_")
            entries.append(InputRow(folder / relative, split, key, stem, [genre]))
    return Prepared(
        task="multiclass",
        vocabulary=list(GENRES),
        rows=entries,
        skipped=skipped,
        description="GTZAN genre (10 classes), fault-filtered split",
        notes={"split_files": {split: str(path) for split, path in split_files.items()}},
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = make_parser("python -m data_prep.datasets.gtzan", __doc__)
    for split in ("train", "valid", "test"):
        parser.add_argument(
            f"--{split}_split",
            type=Path,
            required=True,
            help=f"{split} list, e.g. {split}_filtered.txt (one 'blues/blues.00012.wav' or .au per line)",
        )
    return run_adapter(parser, prepare, argv)


if __name__ == "__main__":
    sys.exit(main())
