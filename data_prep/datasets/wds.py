"""Foreign WebDataset audio tars -> lit_mrl shards: ``python -m data_prep.datasets.wds --root TARS --out OUT``.

For datasets published as WebDataset tars of audio plus labels (the Hub's
``confit/audioset-16khz-wds``, or any tars of ``{key}.flac``/``.wav``/``.mp3``/... with
``{key}.json``, ``.cls`` or ``.txt``). ``--root`` is one ``.tar`` or a folder searched
recursively for ``*.tar`` (uncompressed; unpack ``.tar.gz`` first). Each tar is read one
member at a time: audio members are located and later copied, one at a time, to a
temporary file that lit_mrl's loader decodes by its content, as any other input.

Labels (``--label_field``; default: none, a corpus without labels):

- a dotted path into each sample's ``.json`` (``labels``, ``meta.tags``, ``tags.0``):
  a string, an integer, or a list of them;
- ``.cls``: the sample's ``.cls`` member, integers separated by spaces or commas;
- ``.txt``: the sample's ``.txt`` member, one label per line.

Integers are class indices into ``--class_names`` (one name per line; it also fixes the
vocabulary and its order), or become their decimal text without it. The task is
multiclass when every sample has exactly one label, else multilabel (``--task`` to
override). The split is ``--split``, or the word a tar's name or folder holds (``train``,
``training``; ``valid``, ``validation``, ``val``, ``dev``; ``test``, ``eval``, ...).
Keys are the WebDataset keys made safe (``clips/abc`` -> ``clips_abc``); a key that
repeats is left out (``--tar_in_key`` puts the tar's name in front of every key).

Never read: members with other extensions (``.pyd``, ``.pickle``, ``.pth``, ...; counted
by extension), links, and names that are absolute or hold ``..`` (listed in
``skipped.jsonl``). A sample whose label member is missing or malformed, an audio member
that does not decode and a tar that cannot be read to its end are listed in
``errors.jsonl`` (exit status 1); the rest is sharded.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from data_prep.core.inputs import infer_task
from data_prep.core.rows import InputRow
from data_prep.datasets.adapter import Prepared, Skipped, make_parser, run_adapter
from data_prep.datasets.metadata import MetadataError, read_vocabulary
from data_prep.datasets.wds_tars import MAX_LABEL_BYTES, Sample, TarScan, scan_tar, split_of
from lit_mrl.formats.shards import sanitize_key


class LabelError(ValueError):
    """A sample's labels cannot be read (its row is listed in ``errors.jsonl``)."""


def find_tars(root: Path) -> list[Path]:
    """``root`` if it is a file, else the ``*.tar`` files under it, sorted."""
    if root.is_file():
        return [root]
    if not root.is_dir():
        raise MetadataError(root, "no such file or folder (--root: a .tar or a folder of them)")
    tars = sorted(root.rglob("*.tar"))
    if not tars:
        raise MetadataError(root, "no .tar files here (searched recursively)")
    return tars


def relative_of(tar: Path, root: Path) -> Path:
    """``tar``'s path under ``root`` (its name when ``root`` is the tar itself)."""
    return Path(tar.name) if tar == root else tar.relative_to(root)


def field_value(data: Any, path: str) -> Any:
    """``data`` at a dotted path; a number steps into a list (``tags.0``)."""
    for part in path.split("."):
        if isinstance(data, dict) and part in data:
            data = data[part]
        elif isinstance(data, list) and part.isdigit() and int(part) < len(data):
            data = data[int(part)]
        else:
            raise LabelError(f"no field {path!r} in its .json")
    return data


def as_labels(value: Any, class_names: list[str] | None, where: str) -> list[str]:
    """Label names from a string, an integer or a list of them."""
    values = value if isinstance(value, list) else [value]
    labels = []
    for item in values:
        if isinstance(item, bool) or not isinstance(item, (str, int)):
            raise LabelError(f"{where}: expected strings or integers, got {json.dumps(item)[:40]}")
        if isinstance(item, int) and class_names is not None:
            if not 0 <= item < len(class_names):
                raise LabelError(
                    f"{where}: class {item} outside --class_names (0-{len(class_names) - 1})"
                )
            item = class_names[item]
        if str(item).strip():
            labels.append(str(item).strip())
    return list(dict.fromkeys(labels))


def labels_of(sample: Sample, source: str, class_names: list[str] | None) -> list[str]:
    """The labels of one sample from its ``source`` (a JSON path, ``.cls`` or ``.txt``)."""
    extension = source[1:] if source.startswith(".") else "json"
    if extension not in sample.label_members:
        raise LabelError(f"no .{extension} member to take labels from")
    data = sample.label_data.get(extension)
    if data is None:
        raise LabelError(f"its .{extension} member is over {MAX_LABEL_BYTES} bytes")
    try:
        text = data.decode("utf-8")
        if extension == "json":
            return as_labels(field_value(json.loads(text), source), class_names, source)
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as err:
        raise LabelError(
            f"its .{extension} member is not valid {extension.upper()} ({err})"
        ) from None
    if extension == "txt":
        return as_labels([line for line in text.splitlines()], None, ".txt")
    parts = [part for part in re.split(r"[\s,]+", text) if part]
    if not all(re.fullmatch(r"\d+", part) for part in parts):
        raise LabelError(f".cls holds {text.strip()[:40]!r}, not class numbers")
    return as_labels([int(part) for part in parts], class_names, ".cls")


def sample_rows(
    tar: Path, scan: TarScan, split: str, args: argparse.Namespace, class_names: list[str] | None
) -> tuple[list[InputRow], list[Skipped]]:
    """One row per sample with audio; the samples and members left out."""
    rows, skipped = [], [Skipped(f"{tar}/{name}", "unsafe member: never read (absolute, '..', link or not a file)")
                         for name in scan.unsafe]  # fmt: skip
    relative = relative_of(tar, args.root)
    for sample in scan.samples.values():
        if not sample.audio:
            members = ", ".join(f".{e}" for e in sorted(sample.label_members))
            skipped.append(Skipped(f"{tar}/{sample.key}", f"no audio member (only {members})"))
            continue
        name = (
            f"{relative.with_suffix('').as_posix()}/{sample.key}" if args.tar_in_key else sample.key
        )
        try:
            key = sanitize_key(name)
        except ValueError:
            skipped.append(Skipped(f"{tar}/{sample.key}", "no usable key in the member name"))
            continue
        error, labels = None, []
        if args.label_field is not None:
            try:
                labels = labels_of(sample, args.label_field, class_names)
            except LabelError as err:
                error = str(err)
        audio, *extra = sample.audio
        skipped += [
            Skipped(f"{tar}/{m.name}", f"second audio member of {sample.key!r}: not used")
            for m in extra
        ]
        meta = {"tar": relative.as_posix()}
        rows.append(
            InputRow(tar, split, key, sample.key, labels, meta=meta, member=audio, error=error)
        )
    return rows, skipped


def drop_repeated_keys(rows: list[InputRow]) -> tuple[list[InputRow], list[Skipped]]:
    """The first row of each key; the later ones as skipped."""
    first: dict[str, InputRow] = {}
    skipped = []
    for row in rows:
        other = first.setdefault(row.key, row)
        if other is not row:
            reason = f"key {row.key!r} repeats (first in {other.path}); --tar_in_key keeps both"
            skipped.append(Skipped(f"{row.path}/{row.member.name}", reason))
    return list(first.values()), skipped


def prepare(args: argparse.Namespace) -> Prepared:
    class_names = None if args.class_names is None else read_vocabulary(args.class_names)
    source = args.label_field
    label_source = None if source is None else source[1:] if source.startswith(".") else "json"
    if label_source not in (None, "json", "cls", "txt"):
        raise MetadataError(args.label_field, "--label_field is a JSON path, .cls or .txt")
    rows, skipped, unknown, unsafe_count = [], [], Counter(), 0
    for tar in find_tars(args.root):
        split = args.split or split_of(list(relative_of(tar, args.root).with_suffix("").parts))
        if split is None:
            raise MetadataError(
                tar, "cannot tell the split from the tar's name or folder: give --split"
            )
        scan = scan_tar(tar, label_source)
        if scan.error is not None:
            rows.append(InputRow(tar, split, error=scan.error, source=str(tar)))
        tar_rows, tar_skipped = sample_rows(tar, scan, split, args, class_names)
        rows += tar_rows
        skipped += tar_skipped
        unknown.update(scan.unknown)
        unsafe_count += len(scan.unsafe)
    broken_tars = [row for row in rows if row.member is None]
    rows, repeated = drop_repeated_keys([row for row in rows if row.member is not None])
    rows += broken_tars
    if unknown or unsafe_count:
        counts = " ".join(f"{extension}={count}" for extension, count in sorted(unknown.items()))
        print(f"members never read: {counts or 'none unknown'}; unsafe names: {unsafe_count}")
    labelled = [row for row in rows if row.error is None and row.member is not None]
    failed = [row for row in rows if row.error is not None and row.member is not None]
    if source is not None and failed and not labelled:  # a wrong --label_field, most likely
        raise MetadataError(
            failed[0].path, f"no sample has labels from {source}: {failed[0].error}"
        )
    task = args.task or ("none" if source is None else infer_task(labelled) or "multilabel")
    vocabulary = class_names or sorted({label for row in labelled for label in row.labels})
    return Prepared(
        task=task,
        vocabulary=vocabulary,
        rows=rows,
        skipped=skipped + repeated,
        description=f"WebDataset tars from {args.root.name}: {len(vocabulary)} labels",
        notes={"label_field": source, "unknown_members": dict(sorted(unknown.items())),
               "unsafe_members": unsafe_count},
    )  # fmt: skip


def main(argv: Sequence[str] | None = None) -> int:
    parser = make_parser("python -m data_prep.datasets.wds", __doc__)
    add = parser.add_argument
    add("--split", help="split of every tar (default: the word in each tar's name or folder)")
    add("--label_field", help="a JSON path (labels, meta.tags), .cls or .txt (default: no labels)")
    add("--class_names", type=Path, help="class names, one per line, for integer labels")
    add(
        "--task",
        choices=["multilabel", "multiclass"],
        help="(default: multiclass if one label each)",
    )
    add("--tar_in_key", action="store_true", help="prefix every key with its tar's name")
    return run_adapter(parser, prepare, argv)


if __name__ == "__main__":
    sys.exit(main())
