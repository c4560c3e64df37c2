"""The catalog workflow at scale: labelling tracks/s and memory, index build, query latency, recall.

``store`` writes a synthetic embedding store of ``--tracks`` x ``--dim`` float32 track
embeddings (the store's format is float32; the ``ivf`` index keeps float16) in parts of
``--part-size``: ``--clusters`` Gaussian clusters (unit-variance centres, ``--noise``
per dimension), the cluster as a multi-class label, one window per track (its timeline
is its embedding). ``head`` writes a random 50-tag probe head for it (``--hidden``, 3
seeds). ``run`` times, each as its own ``python -m lit_mrl`` process with its peak RSS
polled (:mod:`bench.rss`) and the 1-minute load average at its start:

* ``label`` with the head (tracks/s, peak RSS); ``--data-limit GIB`` runs it again under
  ``prlimit --data`` (heap and anonymous maps capped below the store's size);
* ``similar`` building the index (``--kind``; time, peak RSS), then ``--evaluate`` on
  ``--queries`` random tracks: p50/p99 latency of one query, precision@10 of
  same-cluster neighbours, recall@10 against exact search, the loaded index's peak RSS.

Example::

    python -m bench.catalog store --tracks 100000 --out /tmp/cat100k
    python -m bench.catalog head --store /tmp/cat100k
    python -m bench.catalog run --store /tmp/cat100k --kind flat
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from bench.rss import PeakTreeRSS, mib


def write_store(out: Path, tracks: int, dim: int, part_size: int, clusters: int, noise: float,
                seed: int) -> None:  # fmt: skip
    """The synthetic store (see the module docstring), part by part."""
    from lit_mrl.formats.embeddings import part_entry, part_name, record_parts, write_index
    from lit_mrl.formats.files import atomic_file

    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((clusters, dim), dtype=np.float32)
    out.mkdir(parents=True, exist_ok=True)
    entries = []
    for number, start in enumerate(range(0, tracks, part_size)):
        n = min(part_size, tracks - start)
        labels = rng.integers(0, clusters, n)
        emb = centres[labels] + noise * rng.standard_normal((n, dim), dtype=np.float32)
        arrays = {"keys": np.array([f"track-{i:08d}" for i in range(start, start + n)]),
                  "embeddings": emb, "labels": labels.astype(np.int64), "timeline": emb,
                  "offsets": np.arange(n + 1, dtype=np.int64),
                  "timestamps": np.full(n, 1.5, dtype=np.float32)}  # fmt: skip
        entry = part_entry(part_name("all", number), arrays)
        with atomic_file(out / entry.name) as file:
            np.savez(file, **arrays)
        entries.append(entry)
    record_parts(out, "all", entries)
    write_index(out, {"embed_dim": dim, "task": "multiclass",
                      "vocabulary": [f"c{i}" for i in range(clusters)],
                      "fingerprint": "synthetic", "window_seconds": 3.0, "hop_seconds": 3.0,
                      "sample_rate": 16000})  # fmt: skip


def write_synthetic_head(store: Path, out: Path, tags: int, hidden: list[int], seeds: int) -> None:
    """A random multi-label head that fits the store (its fingerprint and size)."""
    import torch

    from lit_mrl.catalog.head import FORMAT_VERSION, HEAD_FORMAT, ProbeHead, write_head
    from lit_mrl.formats.embeddings import read_index

    index = read_index(store)
    dims = [index.embed_dim, *hidden, tags]
    gen = torch.Generator().manual_seed(0)
    kernels = [
        torch.randn(seeds, a, b, generator=gen) / a**0.5 for a, b in itertools.pairwise(dims)
    ]
    biases = [torch.zeros(seeds, 1, b) for b in dims[1:]]
    made = {
        k: index.settings.get(k)
        for k in ("fingerprint", "window_seconds", "hop_seconds", "sample_rate")
    }
    config = {"format": HEAD_FORMAT, "format_version": FORMAT_VERSION, "task": "multilabel",
              "task_name": "tags", "vocabulary": [f"tag{i}" for i in range(tags)],
              "metric": "default", "in_dim": index.embed_dim, "hidden_dims": hidden,
              "embeddings": made, "thresholds": [0.5] * tags,
              "standardize": {"inputs": {"mean": [0.0] * index.embed_dim,
                                         "std": [1.0] * index.embed_dim}, "targets": None}}  # fmt: skip
    write_head(ProbeHead(config, kernels, biases), out)


def timed(command: list[str], env: dict[str, str] | None = None) -> dict[str, float]:
    """Run a command; its wall seconds, peak tree RSS (MiB) and the load average at start."""
    load = os.getloadavg()[0]
    start = time.perf_counter()
    proc = subprocess.Popen(command, env={**os.environ, **(env or {})}, stdout=subprocess.PIPE,
                            text=True)  # fmt: skip
    with PeakTreeRSS(proc.pid) as peak:
        out, _ = proc.communicate()
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed ({proc.returncode})")
    return {"seconds": time.perf_counter() - start, "peak_mib": mib(peak.peak_bytes),
            "load": load, "stdout": out}  # fmt: skip


def run(args: argparse.Namespace) -> None:
    """Label, build, evaluate; print the figures as JSON lines."""
    from lit_mrl.formats.embeddings import read_index

    store = Path(args.store)
    tracks = sum(e.num_samples for e in read_index(store).splits["all"].parts)
    lit = [sys.executable, "-m", "lit_mrl"]
    head, work = store / "head", Path(args.work or f"{store}-out")
    if "label" in args.stages:
        cmd = [*lit, "label", "--embeddings", str(store), "--heads", str(head), "--out",
               str(work / "labels"), "--overwrite", "true", "--threads", str(args.threads)]  # fmt: skip
        got = timed(cmd)
        print(json.dumps({"stage": "label", "tracks": tracks, "tracks_per_s": round(tracks / got["seconds"]),
                          "seconds": round(got["seconds"], 1), "peak_mib": round(got["peak_mib"]),
                          "load": got["load"]}), flush=True)  # fmt: skip
        if args.data_limit:
            limit = int(args.data_limit * 2**30)
            got = timed(["prlimit", f"--data={limit}", *cmd])
            print(json.dumps({"stage": "label under prlimit", "data_limit_gib": args.data_limit,
                              "seconds": round(got["seconds"], 1),
                              "peak_mib": round(got["peak_mib"]), "load": got["load"]}), flush=True)  # fmt: skip
    if "similar" in args.stages:
        index = work / f"index-{args.kind}"
        build = [*lit, "similar", "--embeddings", str(store), "--index", str(index), "--kind",
                 args.kind, "--overwrite", "true", "--threads", str(args.threads)]  # fmt: skip
        got = timed(build)
        size = sum(p.stat().st_size for p in index.iterdir())
        print(json.dumps({"stage": f"similar build ({args.kind})", "tracks": tracks,
                          "seconds": round(got["seconds"], 1), "peak_mib": round(got["peak_mib"]),
                          "index_mib": round(mib(size)), "load": got["load"]}), flush=True)  # fmt: skip
        for nprobe in args.nprobe or [None]:
            evaluate = [*lit, "similar", "--index", str(index), "--evaluate", "true",
                        "--queries", str(args.queries), "--threads", str(args.threads)]  # fmt: skip
            evaluate += ["--nprobe", str(nprobe)] if nprobe else []
            got = timed(evaluate)
            report = json.loads(got["stdout"].strip().splitlines()[-1])
            print(json.dumps({"stage": f"similar evaluate ({args.kind})", **report,
                              "seconds": round(got["seconds"], 1), "peak_mib": round(got["peak_mib"]),
                              "load": got["load"]}), flush=True)  # fmt: skip


def main() -> None:
    """Parse the command line and run a subcommand."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    make = sub.add_parser("store", help="write a synthetic store")
    make.add_argument("--out", required=True)
    make.add_argument("--tracks", type=int, default=100_000)
    make.add_argument("--dim", type=int, default=1728)
    make.add_argument("--part-size", type=int, default=8192)
    make.add_argument("--clusters", type=int, default=1000)
    make.add_argument("--noise", type=float, default=1.5)
    make.add_argument("--seed", type=int, default=0)
    head = sub.add_parser("head", help="write a random 50-tag head into STORE/head")
    head.add_argument("--store", required=True)
    head.add_argument("--tags", type=int, default=50)
    head.add_argument("--hidden", type=int, nargs="*", default=[512])
    head.add_argument("--seeds", type=int, default=3)
    bench = sub.add_parser("run", help="time label and similar on STORE")
    bench.add_argument("--store", required=True)
    bench.add_argument("--work", help="output folder (default STORE-out)")
    bench.add_argument("--stages", nargs="+", default=["label", "similar"])
    bench.add_argument("--kind", default="auto", choices=["auto", "flat", "ivf"])
    bench.add_argument("--nprobe", type=int, nargs="*")
    bench.add_argument("--queries", type=int, default=500)
    bench.add_argument("--threads", type=int, default=2)
    bench.add_argument("--data-limit", type=float, help="GiB: label again under prlimit --data")
    args = parser.parse_args()
    if args.command == "store":
        write_store(Path(args.out), args.tracks, args.dim, args.part_size, args.clusters,
                    args.noise, args.seed)  # fmt: skip
    elif args.command == "head":
        write_synthetic_head(
            Path(args.store), Path(args.store) / "head", args.tags, args.hidden, args.seeds
        )
    else:
        run(args)


if __name__ == "__main__":
    main()
