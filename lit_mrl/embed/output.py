"""The output folder of ``python -m lit_mrl embed``: what a rerun keeps, and the final index.

Every rank of a run reads the folder first (:func:`prepare_output`: the same answer
everywhere); rank 0 then writes the index with the parts kept and deletes the old
journals (:func:`start_index`) before any part is written, and once every rank is done
lists every recorded part (:func:`finish_index`). See :mod:`lit_mrl.formats.embedding_index`
for the journals that make a run killed with ``kill -9`` resumable.
"""

from __future__ import annotations

from pathlib import Path

from lit_mrl.errors import UsageError
from lit_mrl.formats.embedding_index import (
    INDEX_NAME,
    PART_ARRAYS,
    EmbeddingIndex,
    PartEntry,
    SplitEntry,
    journals,
    part_pattern,
    read_index,
    read_raw_index,
    recorded_parts,
    write_index,
)
from lit_mrl.formats.embeddings import part_entry, read_part

ERRORS_NAME = "errors.jsonl"
# index.json fields that must agree for a rerun to add to an existing output folder
RESUME_FIELDS = ("fingerprint", "input", "window_seconds", "hop_seconds", "sample_rate")


def start_index(folder: Path, index: EmbeddingIndex) -> None:
    """Rank 0, before any part is written: the fingerprint and the parts kept, no journals.

    The old journals' parts that were kept are in the index now, the others must stay out
    of it: deleting the journals leaves the next ones to hold only this run's parts.
    """
    write_index(folder, index)
    for path in journals(folder):
        path.unlink()


def finish_index(folder: Path, index: EmbeddingIndex, world: int) -> None:
    """Rank 0, after every rank is done: every recorded part in the index, one error list.

    The journals are deleted once the index lists their parts (if this is cut short, the
    next run merges them again: a part is listed once, by name).
    """
    index.splits = recorded_parts(folder, index)
    write_index(folder, index)
    for path in journals(folder):
        path.unlink()
    if world > 1:
        ranks = sorted(folder.glob("errors.r[0-9][0-9][0-9].jsonl"))
        (folder / ERRORS_NAME).write_text("".join(p.read_text() for p in ranks))
        for path in ranks:
            path.unlink()


def prepare_output(folder: Path, index: EmbeddingIndex, overwrite: bool) -> dict[str, SplitEntry]:
    """The parts already in ``folder`` to keep, after checking they were made the same way.

    Kept: the parts ``index.json`` lists and those a killed run recorded in its journals,
    if their files exist and their keys match what was recorded; any other part is
    embedded again (a note says which). A version-1 index is upgraded (its parts get
    digests).

    Returns:
        The kept parts per split (:class:`~lit_mrl.formats.embedding_index.SplitEntry`).

    Raises:
        UsageError: the folder holds embeddings of other weights, settings or input.
    """
    if overwrite:
        for path in [*folder.glob("*.npz"), *journals(folder)]:
            path.unlink()
        (folder / INDEX_NAME).unlink(missing_ok=True)
        (folder / ERRORS_NAME).unlink(missing_ok=True)
        return {}
    if not (folder / INDEX_NAME).is_file():
        stray = [p.name for p in [*folder.glob("*.npz"), *journals(folder)]]
        if stray:
            raise UsageError(
                f"{folder} holds embedding parts ({stray[0]}, ...) but no index.json: "
                "use another --out, or --overwrite to delete them"
            )
        return {}
    old = upgrade_index(folder) or read_index(folder)
    for name in RESUME_FIELDS:
        if old.settings.get(name) != index.settings[name]:
            raise UsageError(
                f"{folder} holds embeddings made with {name}={old.settings.get(name)!r}, this "
                f"run has {name}={index.settings[name]!r}: use another --out, or --overwrite "
                "to start over"
            )
    return keep_intact(folder, recorded_parts(folder, old))


def keep_intact(folder: Path, splits: dict[str, SplitEntry]) -> dict[str, SplitEntry]:
    """``splits`` without the parts whose keys differ from their entries (noted)."""
    kept = {}
    for split, entry in splits.items():
        good = []
        for part in entry.parts:
            try:
                read_part(folder / part.name, ("keys",), part)
                good.append(part)
            except ValueError as err:
                print(f"{err}: its tracks are embedded again (the file is left as it is)")
        if good:
            kept[split] = SplitEntry(good)
    return kept


def done_keys(root: str | Path, parts: list[PartEntry]) -> set[str]:
    """Keys of the given parts of ``root`` (to resume), each part's keys checked.

    Raises:
        ValueError: naming a part that is missing or differs from its entry.
    """
    keys: set[str] = set()
    for entry in parts:
        path = Path(root) / entry.name
        if not path.is_file():
            raise ValueError(f"{path}: listed in {Path(root) / INDEX_NAME} but missing")
        keys.update(read_part(path, ("keys",), entry)["keys"].tolist())
    return keys


def upgrade_index(root: str | Path) -> EmbeddingIndex | None:
    """A version-1 ``index.json`` as a current one: its listed parts, with digests.

    Version 1 listed part names only; the parts it lists that exist are read whole once
    to make their entries (what version-1 readers trusted). ``None`` if ``root`` holds no
    version-1 index. Nothing is written.
    """
    raw = read_raw_index(root)
    if raw.get("format_version") != 1:
        return None
    splits = {}
    for split, listed in (raw.get("splits") or {}).items():
        names = listed.get("parts", []) if isinstance(listed, dict) else []
        entries = []
        for name in names:
            path = Path(root) / str(name)
            if part_pattern(split).fullmatch(str(name)) and path.is_file():
                entries.append(part_entry(path.name, read_part(path, PART_ARRAYS)))
        splits[split] = {"parts": [entry.to_dict() for entry in entries]}
    return EmbeddingIndex.from_dict({**raw, "splits": splits}, str(Path(root) / INDEX_NAME))
