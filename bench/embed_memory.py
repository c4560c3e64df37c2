r"""Peak memory of ``python -m lit_mrl embed`` on one short vs one long track.

Writes one 7-second and one 54-minute track (16 kHz FLAC, noise + tones), each alone in
its own folder, and embeds each folder in a fresh process::

    python -m lit_mrl embed --random_init configs/demo/contrastive.yaml --input DIR \
        --out OUT --num_workers 1 --trainer.accelerator cpu

while polling ``VmRSS`` of that process and its children (the loader worker) every 50 ms
(:mod:`bench.rss`; also the anonymous PSS, which counts pages a worker shares with its
parent once). The extractor streams a track in blocks, so the peak should not grow
with track length: target, the 54-minute track within 150 MB of the 7-second one.
Example::

    python -m bench.embed_memory --minutes 5
    python -m bench.embed_memory
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.rss import PeakTreeRSS
from bench.synthetic import write_flac
from lit_mrl.formats.embeddings import load_split

TARGET_MB = 150
REPO = Path(__file__).resolve().parent.parent


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--short-seconds", type=float, default=7.0)
    parser.add_argument("--minutes", type=float, default=54.0, help="length of the long track")
    parser.add_argument("--config", default="configs/demo/contrastive.yaml", help="--random_init")
    parser.add_argument("--num-workers", type=int, default=1)
    parser.add_argument(
        "--chunk-seconds", type=float, help="embed --chunk_seconds (audio per STFT call; 60)"
    )
    parser.add_argument(
        "--batch-windows", type=int, help="embed --batch_windows (windows per forward; 128)"
    )
    parser.add_argument("--interval", type=float, default=0.05, help="seconds between polls")
    parser.add_argument(
        "--env",
        nargs="*",
        default=[],
        metavar="NAME=VALUE",
        help="environment of the embed process, e.g. MALLOC_MMAP_THRESHOLD_=1048576",
    )
    return parser.parse_args(argv)


def embed_folder(
    folder: Path, out: Path, opts: argparse.Namespace
) -> tuple[PeakTreeRSS, float, int]:
    """Embed ``folder`` in a child process: ``(peak RSS record, wall s, windows)``."""
    command = [
        sys.executable, "-m", "lit_mrl", "embed", "--random_init", opts.config,
        "--input", str(folder), "--out", str(out), "--num_workers", str(opts.num_workers),
        "--trainer.accelerator", "cpu",
    ]  # fmt: skip
    if opts.chunk_seconds is not None:
        command += ["--chunk_seconds", str(opts.chunk_seconds)]
    if opts.batch_windows is not None:
        command += ["--batch_windows", str(opts.batch_windows)]
    log = out.with_suffix(".log")
    start = time.perf_counter()
    with open(log, "w") as output:
        env = {**os.environ, **dict(item.split("=", 1) for item in opts.env)}
        process = subprocess.Popen(
            command, cwd=REPO, env=env, stdout=output, stderr=subprocess.STDOUT
        )
        with PeakTreeRSS(process.pid, opts.interval, pss=True) as peak:
            code = process.wait()
    wall = time.perf_counter() - start
    if code != 0:
        sys.exit(f"embed failed with exit code {code}:\n{log.read_text()[-3000:]}")
    timeline = load_split(out, "all", timeline=True).timeline
    return peak, wall, len(timeline)


def main(argv: list[str] | None = None) -> dict[str, float]:
    opts = parse_args(argv)
    tracks = {"short": opts.short_seconds, "long": opts.minutes * 60}
    results = {}
    with tempfile.TemporaryDirectory(prefix="embed_memory-") as tmp:
        for name, seconds in tracks.items():
            start = time.perf_counter()
            path = write_flac(Path(tmp) / name / f"{name}.flac", seconds, seed=len(results))
            made = time.perf_counter() - start
            peak, wall, windows = embed_folder(path.parent, Path(tmp) / f"{name}_out", opts)
            results[name] = peak
            print(
                f"{seconds / 60:8.2f} min track ({path.stat().st_size / 1e6:6.1f} MB FLAC, "
                f"written in {made:.1f} s): peak RSS {peak.peak_bytes / 1e6:7.1f} MB, anonymous "
                f"PSS {peak.pss_peak_bytes / 1e6:7.1f} MB, main process RSS "
                f"{peak.root_peak_bytes / 1e6:.1f} MB; {windows} windows, process wall time {wall:.1f} s",
                flush=True,
            )
    short, long = results["short"], results["long"]
    growth = (long.peak_bytes - short.peak_bytes) / 1e6
    pss_growth = (long.pss_peak_bytes - short.pss_peak_bytes) / 1e6
    verdict = "meets" if growth <= TARGET_MB else "misses"
    print(
        f"peak RSS summed over the process tree (polled every {opts.interval * 1000:.0f} ms): "
        f"{short.peak_bytes / 1e6:.1f} MB for {opts.short_seconds:g} s, "
        f"{long.peak_bytes / 1e6:.1f} MB for {opts.minutes:g} min: difference {growth:+.1f} MB "
        f"({verdict} the target of <= {TARGET_MB} MB); anonymous PSS (every page once): "
        f"difference {pss_growth:+.1f} MB"
    )
    return {"rss_growth_mb": growth, "pss_growth_mb": pss_growth}


if __name__ == "__main__":
    main()
