"""Memory of a process and all its descendants, polled from ``/proc`` (Linux).

Two sums over the process tree:

* ``VmRSS``: resident pages of each process. A forked loader worker maps the parent's
  pages copy-on-write, and they count in full in both, so the sum over-counts them: a
  worker that lives longer (while a long track is read) adds its copy of the parent's
  pages to the tree's peak.
* ``Pss_Anon + Pss_Shmem`` (``smaps_rollup``): anonymous and shared memory (heap,
  tensors, loader queues), each page split between the processes that map it, so the
  sum counts every page once. Library code and other file pages are left out: their
  ``Pss`` depends on unrelated processes mapping the same files.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

PROC = Path("/proc")


def _ppid(pid: int) -> int | None:
    try:
        stat = (PROC / str(pid) / "stat").read_text()
    except OSError:
        return None
    # "pid (comm) state ppid ...": comm may hold spaces and parentheses, so split after it
    return int(stat.rsplit(")", 1)[1].split()[1])


def descendants(pid: int) -> list[int]:
    """``pid`` and every process below it."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir(PROC):
        if entry.isdigit():
            parent = _ppid(int(entry))
            if parent is not None:
                children.setdefault(parent, []).append(int(entry))
    tree, todo = [], [pid]
    while todo:
        current = todo.pop()
        tree.append(current)
        todo.extend(children.get(current, []))
    return tree


def _field_bytes(path: Path, name: str) -> int:
    """A ``Name:  123 kB`` field of a ``/proc`` file in bytes (0 if gone or absent)."""
    try:
        for line in path.read_text().splitlines():
            if line.startswith(name):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0  # the process exited (or is a zombie, which has no memory left)


def rss_bytes(pid: int) -> int:
    """``VmRSS`` of one process in bytes."""
    return _field_bytes(PROC / str(pid) / "status", "VmRSS:")


def anon_pss_bytes(pid: int) -> int:
    """``Pss_Anon + Pss_Shmem`` of one process in bytes (shared pages split)."""
    rollup = PROC / str(pid) / "smaps_rollup"
    return _field_bytes(rollup, "Pss_Anon:") + _field_bytes(rollup, "Pss_Shmem:")


class PeakTreeRSS:
    """Poll a process tree's memory in a background thread; keep the peaks.

    Use as a context manager around the work (``pid`` defaults to this process)::

        with PeakTreeRSS(proc.pid) as peak:
            proc.wait()
        print(peak.peak_bytes, peak.root_peak_bytes)

    Attributes:
        peak_bytes: highest summed ``VmRSS`` of the tree.
        pss_peak_bytes: highest summed ``Pss_Anon + Pss_Shmem`` of the tree (with ``pss=True``).
        root_peak_bytes: highest ``VmRSS`` of the root process alone.

    Args:
        pid: root of the tree.
        interval: seconds between polls.
        pss: also poll ``Pss_Anon + Pss_Shmem`` (the kernel walks page tables: costlier).
    """

    def __init__(self, pid: int | None = None, interval: float = 0.05, pss: bool = False) -> None:
        self.pid = os.getpid() if pid is None else pid
        self.interval = interval
        self.pss = pss
        self.peak_bytes = 0
        self.pss_peak_bytes = 0
        self.root_peak_bytes = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            tree = descendants(self.pid)
            sizes = {p: rss_bytes(p) for p in tree}
            self.peak_bytes = max(self.peak_bytes, sum(sizes.values()))
            self.root_peak_bytes = max(self.root_peak_bytes, sizes.get(self.pid, 0))
            if self.pss:
                self.pss_peak_bytes = max(self.pss_peak_bytes, sum(anon_pss_bytes(p) for p in tree))
            self._stop.wait(self.interval)

    def __enter__(self) -> PeakTreeRSS:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def mib(num_bytes: float) -> float:
    """Bytes in MiB."""
    return num_bytes / 2**20
