"""``python -m lit_mrl similar``: find similar tracks with a nearest-neighbour index.

``--embeddings STORE --index DIR`` builds the index (once: a rerun reuses it if it was
built from the same embeddings; kinds and their sizes: :mod:`lit_mrl.catalog.neighbours`).
Then, with the index:

- ``--keys '[k1, k2]'``: each track's ``k`` nearest other tracks;
- ``--audio '[a.wav]' --checkpoint MODEL``: audio files embedded on the fly with the
  same model (its fingerprint must be the index's) and windowing, then searched;
- ``--evaluate true``: on a labelled store, precision@k of same-label neighbours and,
  for an approximate index, recall@10 against exact search, plus the latency of one
  query (p50/p99), over ``--queries`` tracks drawn at random; also written to
  ``DIR/evaluation.json``.

Results are JSON lines on stdout: ``{"query": ..., "neighbours": [[key, cosine], ...]}``.
"""

from __future__ import annotations

import contextlib
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Literal

import numpy as np
from jsonargparse.typing import NonNegativeInt, PositiveInt

from lit_mrl.errors import UsageError

EVALUATION_NAME = "evaluation.json"


def similar(
    index: str,
    embeddings: str | None = None,
    splits: list[str] | str | None = None,
    kind: Literal["auto", "flat", "ivf"] = "auto",
    nlist: PositiveInt | None = None,
    nprobe: PositiveInt | None = None,
    keys: list[str] | str | None = None,
    audio: list[str] | str | None = None,
    checkpoint: str | None = None,
    model: str | None = None,
    k: PositiveInt = 10,
    evaluate: bool = False,
    queries: PositiveInt = 1000,
    threads: NonNegativeInt = 0,
    seed: int = 0,
    overwrite: bool = False,
) -> int:
    """Build a nearest-neighbour index of track embeddings, query it, or evaluate it.

    Args:
        index: the index folder (built there from --embeddings if it holds none).
        embeddings: folder written by `python -m lit_mrl embed` (to build, or to evaluate).
        splits: splits to index, one or a list (default: all).
        kind: flat (exact), ivf (approximate), or auto: flat up to 100k tracks, ivf past it.
        nlist: ivf cells (default: a power of two near sqrt(tracks)).
        nprobe: ivf cells a query scans (default: nlist/8, at least 8).
        keys: track keys to find neighbours of, one or a list.
        audio: audio files to find neighbours of, one or a list (needs --checkpoint or --model).
        checkpoint: the model the store was embedded with, to embed --audio.
        model: a model YAML the store was embedded with (as for embed), to embed --audio.
        k: neighbours per query.
        evaluate: report precision@k, recall@10 against exact search and query latency.
        queries: tracks drawn for --evaluate.
        threads: CPU threads (0: FAISS's default, every core).
        seed: seed of the ivf k-means and of the --evaluate draw.
        overwrite: build the index again even if one is there.

    Returns:
        0 (errors raise).
    """
    from lit_mrl.catalog.neighbours import read_neighbour_index

    if threads:
        import faiss

        faiss.omp_set_num_threads(threads)
    if embeddings is not None:
        ensure_index(index, embeddings, splits, kind, nlist, seed, overwrite)
    elif not (Path(index) / "config.json").is_file():
        raise UsageError(f"{index} holds no index: give --embeddings to build one")
    if not (keys or audio or evaluate):
        return 0  # built (or there already): nothing to ask it
    built = read_neighbour_index(index)
    for key in [keys] if isinstance(keys, str) else keys or []:
        row = built.row(key)
        _, rows = built.search(built.vectors([row]), k + 1, nprobe)
        print_result(key, built, rows[0], k, skip=row, nprobe=nprobe)
    files = [audio] if isinstance(audio, str) else audio or []
    if files:
        for name, vector in embed_audio(files, built.config, checkpoint, model).items():
            _, rows = built.search(vector[None], k, nprobe)
            print_result(name, built, rows[0], k, vector=vector, nprobe=nprobe)
    if evaluate:
        report = evaluation(built, embeddings, k, nprobe, queries, seed)
        (Path(index) / EVALUATION_NAME).write_text(json.dumps(report, indent=2) + "\n")
        print(json.dumps(report))
    return 0


def ensure_index(
    folder: str, root: str, splits: list[str] | str | None, kind: str, nlist: int | None,
    seed: int, overwrite: bool,
) -> None:  # fmt: skip
    """Build the index unless ``folder`` holds one built from the same embeddings."""
    from lit_mrl.catalog.neighbours import CONFIG_NAME, build_index
    from lit_mrl.formats.embeddings import read_index
    from lit_mrl.formats.files import lock_dir

    store = read_index(root)
    wanted = [splits] if isinstance(splits, str) else splits or list(store.splits)
    unknown = [s for s in wanted if s not in store.splits]
    if unknown:
        raise UsageError(f"splits {unknown} are not in {root} (has {list(store.splits)})")
    config_path = Path(folder) / CONFIG_NAME
    if config_path.is_file() and not overwrite:
        config = json.loads(config_path.read_text())
        total = sum(e.num_samples for s in wanted for e in store.splits[s].parts)
        now = {"embeddings": str(Path(root).resolve()), "splits": wanted, "num_tracks": total,
               "fingerprint": store.settings.get("fingerprint")}  # fmt: skip
        changed = [name for name, value in now.items() if config.get(name) != value]
        if changed:
            raise UsageError(f"{folder} indexes other {', '.join(changed)} than {root} has now: "
                             "--overwrite builds it again")  # fmt: skip
        return
    Path(folder).mkdir(parents=True, exist_ok=True)
    with lock_dir(folder, "similar", "another `python -m lit_mrl similar` build"):
        config_path.unlink(missing_ok=True)
        started = time.perf_counter()
        config = build_index(root, store, wanted, folder, kind, nlist, seed)
    print(f"built a {config['kind']} index of {config['num_tracks']} tracks in {folder} "
          f"({time.perf_counter() - started:.1f} s)")  # fmt: skip


def print_result(
    name: str, built: Any, rows: np.ndarray, k: int, skip: int | None = None,
    vector: np.ndarray | None = None, nprobe: int | None = None,
) -> None:  # fmt: skip
    """One JSON line: the query and its neighbours' keys with their cosines."""
    rows = [int(r) for r in rows if r >= 0 and r != skip][:k]
    query = built.vectors([skip])[0] if vector is None else vector / np.linalg.norm(vector)
    cosines = built.vectors(rows) @ query if rows else np.zeros(0)
    pairs = [[built.keys[r], round(float(c), 6)] for r, c in zip(rows, cosines, strict=True)]
    print(json.dumps({"query": name, "neighbours": pairs}))


def embed_audio(
    files: list[str], config: dict[str, Any], checkpoint: str | None, model: str | None
) -> dict[str, np.ndarray]:
    """``{file: (D,) track embedding}``, embedded as the store was (same model and windows).

    Raises:
        UsageError: no model given, or a model other than the index's.
    """
    from lit_mrl.embed.command import Launch, embed
    from lit_mrl.formats.embeddings import load_split, read_index

    if checkpoint is None and model is None:
        raise UsageError(
            "--audio needs --checkpoint (or --model): the model the store was embedded with"
        )
    with tempfile.TemporaryDirectory() as tmp:
        listing = Path(tmp) / "queries.txt"
        listing.write_text("".join(f"{Path(f).resolve()}\n" for f in files))
        with contextlib.redirect_stdout(sys.stderr):  # stdout is the JSON lines
            code = embed(str(listing), str(Path(tmp) / "emb"), checkpoint=checkpoint,
                         model=model, window_seconds=config.get("window_seconds"),
                         hop_seconds=config.get("hop_seconds"),
                         trainer=Launch(accelerator="cpu"), num_workers=0)  # fmt: skip
        made = read_index(Path(tmp) / "emb")
        if made.settings.get("fingerprint") != config.get("fingerprint"):
            raise UsageError(f"{checkpoint or model} is model {made.settings.get('fingerprint')}, "
                             f"the index holds embeddings of model {config.get('fingerprint')}: "
                             "embed queries with the store's model")  # fmt: skip
        if code != 0:
            raise UsageError(f"some --audio files could not be embedded (see {tmp})")
        found = load_split(Path(tmp) / "emb", "all", index=made)
    by_path = dict(zip(found.keys, found.embeddings, strict=True))
    return {f: by_path[str(Path(f).resolve())] for f in files}


def evaluation(
    built: Any, embeddings: str | None, k: int, nprobe: int | None, queries: int, seed: int
) -> dict[str, Any]:
    """Precision@k, recall@10 against exact search and per-query latency on drawn tracks."""
    from lit_mrl.catalog.neighbours import default_nprobe
    from lit_mrl.catalog.retrieval import (
        exact_top_k,
        precision_at_k,
        recall_at_k,
        store_labels,
        without_self,
    )
    from lit_mrl.formats.embeddings import read_index

    config = built.config
    root = embeddings or config["embeddings"]
    store = read_index(root)
    rng = np.random.default_rng(seed)
    drawn = np.sort(
        rng.choice(config["num_tracks"], min(queries, config["num_tracks"]), replace=False)
    )
    vectors = built.vectors(drawn.tolist())
    depth = max(k, 10) + 1
    latencies, found = [], []
    for vector in vectors:  # one query at a time: the latency a user sees
        start = time.perf_counter()
        found.append(built.search(vector[None], depth, nprobe)[1][0])
        latencies.append(time.perf_counter() - start)
    rows = np.array(found)
    report: dict[str, Any] = {
        "index": str(built.folder), "kind": config["kind"], "num_tracks": config["num_tracks"],
        "nlist": config["nlist"],
        "nprobe": (nprobe or default_nprobe(config["nlist"])) if config["kind"] == "ivf" else None,
        "queries": len(drawn), "k": k,
        "latency_ms_p50": round(1000 * float(np.percentile(latencies, 50)), 3),
        "latency_ms_p99": round(1000 * float(np.percentile(latencies, 99)), 3),
    }  # fmt: skip
    if store.task in ("multiclass", "multilabel"):
        labels = store_labels(root, store, config["splits"])
        report[f"precision_at_{k}"] = precision_at_k(labels, drawn, without_self(rows, drawn, k))
    exact = exact_top_k(root, store, config["splits"], vectors, depth)[1]
    report["recall_at_10"] = recall_at_k(
        without_self(rows, drawn, 10), without_self(exact, drawn, 10), 10
    )
    return report
