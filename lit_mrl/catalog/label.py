"""``python -m lit_mrl label``: apply trained probe heads to every track of an embedding store.

Writes one table per run into ``--out`` (columns: :mod:`lit_mrl.catalog.table`)::

    labels/
        run.json          # the embeddings, heads (and their digests) and options
        labels.parquet    # a row per track of the labelled splits
        labels.csv        # the same rows, lists joined with "|", without [K] arrays
        parts/            # a table part per embeddings part (what a rerun resumes from)

Streaming: one embeddings part at a time is read, labelled and written as its table part
(:mod:`lit_mrl.catalog.parts`), and the table is then written part by part, so memory
depends on the part size, not on the catalog. A rerun resumes: table parts that match
their embeddings part are kept, the rest (new parts of an ``embed`` that went on, a part
whose embeddings changed) are made. ``--processes N`` labels parts on N local processes;
``--rank R --world W`` takes every W-th part on many machines sharing the folder, and the
run that finds every part done writes the table.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from jsonargparse.typing import NonNegativeInt, PositiveInt

from lit_mrl.errors import UsageError

RUN_NAME = "run.json"
TABLE_NAME = "labels.parquet"
CSV_NAME = "labels.csv"


def label(
    embeddings: str,
    heads: list[str] | str,
    out: str,
    splits: list[str] | str | None = None,
    top_k: PositiveInt = 5,
    per_seed: bool = False,
    processes: PositiveInt = 1,
    threads: NonNegativeInt = 0,
    rank: NonNegativeInt = 0,
    world: PositiveInt = 1,
    csv: bool = True,
    overwrite: bool = False,
) -> int:
    """Label every track of an embedding store with one or many trained probe heads.

    Args:
        embeddings: folder written by `python -m lit_mrl embed`.
        heads: probe results folders (or their head/ folders), one or a list '[a, b]'.
        out: output folder; a rerun resumes it.
        splits: splits to label, one or a list (default: every split of the store).
        top_k: tags listed per track for multi-label heads, most probable first.
        per_seed: also write each seed's probabilities (values), to check a head.
        processes: local processes labelling parts at once.
        threads: CPU threads in all (0: the cores this process may use).
        rank: this machine's share when many label one folder (0 .. world-1).
        world: machines labelling one folder.
        csv: also write labels.csv.
        overwrite: delete what --out holds and start over.

    Returns:
        0 (errors raise).
    """
    from lit_mrl.catalog.head import read_head
    from lit_mrl.catalog.parts import is_done
    from lit_mrl.formats.embeddings import read_index
    from lit_mrl.formats.files import lock_dir

    require_pyarrow()
    if rank >= world:
        raise UsageError(f"--rank {rank} is not below --world {world}")
    index = read_index(embeddings)
    read = [read_head(path) for path in ([heads] if isinstance(heads, str) else heads)]
    for head in read:
        head.check_embeddings(index.settings, index.embed_dim, embeddings)
    names = [head.name for head in read]
    if len(set(names)) != len(names):
        raise UsageError(f"two heads share a task name ({names}): their columns would clash")
    wanted = [splits] if isinstance(splits, str) else splits or list(index.splits)
    unknown = [s for s in wanted if s not in index.splits]
    if unknown:
        raise UsageError(f"splits {unknown} are not in {embeddings} (has {list(index.splits)})")
    folder = Path(out)
    folder.mkdir(parents=True, exist_ok=True)
    with lock_dir(folder, f"label.r{rank:03d}", "another `python -m lit_mrl label`"):
        start_run(folder, run_settings(embeddings, index, read, wanted, top_k, per_seed), overwrite)
        works = all_work(folder, embeddings, index, wanted)
        mine = [w for i, w in enumerate(works) if i % world == rank and not is_done(w)]
        done = len(works) - len(mine) - sum(1 for i in range(len(works)) if i % world != rank)
        print(f"{len(works)} parts; {max(done, 0)} of this share already labelled, "
              f"{len(mine)} to label")  # fmt: skip
        run_work(mine, read, embeddings, top_k, per_seed, processes, threads)
        left = [w for w in works if not is_done(w)]
        if left:
            print(f"{len(left)} parts are left to other ranks; the run that finishes them "
                  "writes the table")  # fmt: skip
            return 0
        rows = write_table(folder, works, table_metadata_for(read, index, wanted), csv)
    outputs = ", ".join(str(folder / n) for n in (TABLE_NAME, CSV_NAME if csv else None) if n)
    print(f"labelled {rows} tracks with {len(read)} heads: {outputs}")
    return 0


def require_pyarrow() -> None:
    """Refuse to start without pyarrow, saying how to get it."""
    try:
        import pyarrow  # noqa: F401
    except ImportError as err:
        raise UsageError(
            "label writes Parquet and CSV with pyarrow, which is not installed: "
            "pip install 'lit_mrl[catalog]'"
        ) from err


def run_settings(
    root: str, index: Any, heads: list[Any], splits: list[str], top_k: int, per_seed: bool
) -> dict[str, Any]:
    """What ``run.json`` records; a rerun must match it to resume."""
    return {
        "embeddings": str(Path(root).resolve()),
        "fingerprint": index.settings.get("fingerprint"),
        "heads": [{"folder": str(h.folder), "digest": h.digest} for h in heads],
        "splits": list(splits),
        "top_k": top_k,
        "per_seed": per_seed,
    }


def start_run(folder: Path, settings: dict[str, Any], overwrite: bool) -> None:
    """Write ``run.json``, or check a resumed run's against it."""
    from lit_mrl.catalog.parts import PARTS_DIR
    from lit_mrl.formats.files import atomic_write

    path = folder / RUN_NAME
    if overwrite:
        shutil.rmtree(folder / PARTS_DIR, ignore_errors=True)
        for name in (RUN_NAME, TABLE_NAME, CSV_NAME):
            (folder / name).unlink(missing_ok=True)
    elif path.is_file():
        try:
            before = json.loads(path.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as err:
            raise ValueError(f"{path} is not JSON ({err}): --overwrite starts over") from err
        changed = [
            k for k in settings if not isinstance(before, dict) or before.get(k) != settings[k]
        ]
        if changed:
            raise UsageError(f"{folder} was labelled with other {', '.join(changed)} "
                             f"(see {path}): --overwrite starts over, or use another --out")  # fmt: skip
        return
    atomic_write(path, (json.dumps(settings, indent=2) + "\n").encode())


def all_work(folder: Path, root: str, index: Any, splits: list[str]) -> list[Any]:
    """Every embeddings part of ``splits``, in split then index order."""
    from lit_mrl.catalog.parts import Work, table_part_path
    from lit_mrl.formats.embeddings import listed_parts

    return [Work(split, path, entry, table_part_path(folder, entry))
            for split in splits for path, entry in listed_parts(root, split, index)]  # fmt: skip


def run_work(
    works: list[Any], heads: list[Any], root: str, top_k: int, per_seed: bool,
    processes: int, threads: int,
) -> None:  # fmt: skip
    """Label ``works`` here, or on ``processes`` spawned processes (parts dealt round-robin)."""
    import os
    from concurrent.futures import ProcessPoolExecutor
    from multiprocessing import get_context

    from tqdm import tqdm

    from lit_mrl.catalog.parts import label_parts

    cores = threads or len(os.sched_getaffinity(0))
    paths, digests = [str(h.folder) for h in heads], [h.digest for h in heads]
    bar = tqdm(total=sum(w.entry.num_samples for w in works), unit="track", desc="label")
    if processes == 1 or len(works) < 2:
        for work in works:
            bar.update(label_parts([work], paths, digests, root, top_k, per_seed, cores))
        bar.close()
        return
    share = max(1, cores // processes)
    with ProcessPoolExecutor(processes, mp_context=get_context("spawn")) as pool:
        jobs = [pool.submit(label_parts, [w], paths, digests, root, top_k, per_seed, share)
                for w in works]  # fmt: skip
        for job in jobs:
            bar.update(job.result())
    bar.close()


def table_metadata_for(heads: list[Any], index: Any, splits: list[str]) -> dict[str, Any]:
    """The table's metadata (see :func:`lit_mrl.catalog.table.table_metadata`)."""
    from lit_mrl.catalog.table import table_metadata

    return table_metadata(heads, index.settings.get("fingerprint"), {"splits": splits})


def write_table(folder: Path, works: list[Any], metadata: dict[str, Any], csv: bool) -> int:
    """Concatenate the table parts into ``labels.parquet`` (and ``.csv``), one part in memory.

    Both are written under temporary names and renamed once complete.
    """
    import os

    import pyarrow.csv as pa_csv
    import pyarrow.parquet as pq

    from lit_mrl.catalog.table import METADATA_KEY, csv_table

    targets = [folder / TABLE_NAME] + ([folder / CSV_NAME] if csv else [])
    temporary = [path.with_name(path.name + ".tmp") for path in targets]
    writers: list[Any] = []
    rows = 0
    try:
        for work in works:
            table = pq.read_table(work.table)
            table = table.replace_schema_metadata({METADATA_KEY: json.dumps(metadata).encode()})
            if not writers:
                writers.append(pq.ParquetWriter(temporary[0], table.schema))
                if csv:
                    writers.append(pa_csv.CSVWriter(temporary[1], csv_table(table[:0]).schema))
            writers[0].write_table(table)
            if csv:
                writers[1].write_table(csv_table(table))
            rows += table.num_rows
    finally:
        for writer in writers:
            writer.close()
    for tmp, path in zip(temporary, targets, strict=True):
        os.replace(tmp, path)
    if not csv:
        (folder / CSV_NAME).unlink(missing_ok=True)
    return rows
