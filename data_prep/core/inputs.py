"""The sharder's checks of its inputs, its vocabulary and task, and its fixed order.

A problem with one input sets its ``error`` (the sharder lists it in ``errors.jsonl``);
a problem with the whole run (two files with one key, a vocabulary that repeats a
label) raises :class:`UsageError`.
"""

from __future__ import annotations

import hashlib
import math
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence

from data_prep.core.options import ShardOptions
from data_prep.core.rows import InputRow, Item
from lit_mrl.errors import UsageError

__all__ = ["Item", "UsageError", "check_items", "infer_task", "order_key", "pending"]


def check_files(items: list[Item]) -> None:
    """Mark items whose file is missing or has no key (the decoder judges the content)."""
    for item in pending(items):
        if not item.path.is_file():
            item.error = "file not found"
        elif not item.key:
            item.error = "cannot make a key from the path"
        else:
            stat = item.path.stat()  # the fingerprint that resume compares
            item.size, item.mtime_ns = stat.st_size, stat.st_mtime_ns
            if item.member is not None:
                if item.member.offset + item.member.size > stat.st_size:
                    item.error = f"tar member {item.member.name!r} is cut off (truncated tar)"
                item.size = item.member.size


def check_duplicates(items: list[Item]) -> None:
    """Mark repeated entries of one file; raise UsageError when two files share a key."""
    first: dict[str, Item] = {}
    for item in pending(items):
        other = first.setdefault(item.key, item)
        if other is item:
            continue
        same = (other.split, other.labels, other.targets, other.meta, other.member) == (
            item.split, item.labels, item.targets, item.meta, item.member
        )  # fmt: skip
        if other.path.resolve() == item.path.resolve() and same:
            item.error = f"duplicate entry (same file and key as {other.origin})"
        else:
            raise UsageError(
                f"duplicate key {item.key!r}: {other.origin} ({other.source}) and "
                f"{item.origin} ({item.source}); give one of them a distinct 'key'"
            )


def check_labels(items: list[Item], vocabulary: Sequence[str], task: str, source: str) -> None:
    """Mark items whose labels or targets do not fit the vocabulary and task."""
    known = set(vocabulary)
    for item in pending(items):
        unknown = [label for label in item.labels if label not in known]
        if unknown:
            item.error = f"unknown label {unknown[0]!r} (not in {source})"
        elif task == "multiclass" and len(item.labels) != 1:
            item.error = f"multiclass needs exactly one label, got {len(item.labels)}"
        elif task == "regression" and (
            item.targets is None or len(item.targets) != len(vocabulary)
        ):
            item.error = f"regression needs {len(vocabulary)} targets, got {item.targets}"
        elif item.targets is not None and not all(map(math.isfinite, item.targets)):
            item.error = "targets contain NaN or Inf"


def pending(items: Iterable[Item]) -> Iterator[Item]:
    """The items not yet marked with an error."""
    return (item for item in items if item.error is None)


def resolve_vocabulary(items: list[Item], options: ShardOptions) -> tuple[list[str], str, str]:
    """Return ``(vocabulary, task, where the vocabulary came from)``.

    Without a task: ``multilabel`` when some inputs have labels, else ``none``. Without a
    vocabulary: the labels seen, sorted; for regression the targets are named ``target``
    (one) or ``target_0``, ``target_1``, ... (the first input's count).
    """
    task = options.task or ("multilabel" if any(item.labels for item in items) else "none")
    if options.vocabulary is not None:
        repeated = [name for name, count in Counter(options.vocabulary).items() if count > 1]
        if repeated:
            raise UsageError(f"{options.vocabulary_source}: label {repeated[0]!r} appears twice")
        return list(options.vocabulary), task, options.vocabulary_source
    if task == "regression":
        count = next((len(item.targets) for item in items if item.targets), 0)
        if count == 0:
            raise UsageError("--task regression needs inputs with 'targets' (a list of numbers)")
        names = ["target"] if count == 1 else [f"target_{i}" for i in range(count)]
        return names, task, "the targets' default names"
    return sorted({label for item in items for label in item.labels}), task, "the labels seen"


def infer_task(rows: Sequence[InputRow]) -> str | None:
    """The task of manifest rows given without ``--task``, with a line saying so; None: default.

    ``regression`` when every row has targets and none has labels, ``multiclass`` when
    every row has exactly one label; otherwise None (:func:`resolve_vocabulary` decides).
    """
    if rows and all(row.targets and not row.labels for row in rows):
        print("task: regression (every row has targets and no labels; --task to override)")
        return "regression"
    if rows and all(len(row.labels) == 1 for row in rows):
        print("task: multiclass (every row has exactly one label; --task multilabel to override)")
        return "multiclass"
    return None


def order_key(item: Item) -> str:
    """A fixed pseudo-random order, so each shard mixes folders and labels."""
    return hashlib.sha256(item.source.encode()).hexdigest()


def check_items(
    rows: Sequence[InputRow], options: ShardOptions, origin: str
) -> tuple[list[Item], list[str], str]:
    """This partition's inputs, checked, in processing order; and the vocabulary and task.

    Args:
        rows: every input (each partition sees them all, to agree on keys and labels).
        options: the run's settings.
        origin: names rows that name no origin of their own: ``{origin}:{1-based index}``.
    """
    items = [Item.from_row(row, f"{origin}:{index}") for index, row in enumerate(rows, 1)]
    check_files(items)
    check_duplicates(items)
    vocabulary, task, where = resolve_vocabulary(items, options)
    check_labels(items, vocabulary, task, where)
    items.sort(key=order_key)
    return items[options.partition_index :: options.num_partitions], vocabulary, task
