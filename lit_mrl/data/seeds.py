"""Seeds of the training stream: a function of (seed, rank, loader worker, epoch) only.

WebDataset's shuffle buffer seeds itself from the process id and the clock, and a seed
taken from ``torch.initial_seed()`` depends on how much of the global RNG was used
before the loader started, which a resumed run does not repeat. Every random choice of
the training stream (shards drawn, shuffle buffer, crop positions) instead comes from
:class:`StreamSeed`, so the same ``seed`` gives the same batches, and a run resumed at
epoch ``e`` sees exactly the batches the uninterrupted run saw in epoch ``e``.
"""

from __future__ import annotations

import random
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import webdataset as wds
from torch.utils.data import get_worker_info


@dataclass
class StreamSeed:
    """Derives the seed of one random stream of the training pipeline.

    The object travels to loader workers with the pipeline; the loader sets ``epoch`` in
    the main process before each epoch's workers start (see
    :class:`~lit_mrl.data.datamodule.TrainLoader`).

    Args:
        seed: the run's seed.
        rank: global rank of this process (DDP ranks draw different data).
        epoch: current training epoch.
    """

    seed: int
    rank: int = 0
    epoch: int = 0

    def __call__(self, stream: str = "") -> int:
        """A 63-bit seed for ``stream`` (``"shards"``, ``"shuffle"``, ``"crops"``) in this worker."""
        info = get_worker_info()
        worker = 0 if info is None else info.id
        entropy = [self.seed % 2**63, self.rank, worker, self.epoch, zlib.crc32(stream.encode())]
        return int(np.random.SeedSequence(entropy).generate_state(1, np.uint64)[0] >> 1)


class SeededShuffle:
    """WebDataset's buffer shuffle with an RNG from :class:`StreamSeed` (made per iteration).

    Args:
        bufsize: samples held in the buffer.
        seed: where the RNG's seed comes from.
    """

    def __init__(self, bufsize: int, seed: StreamSeed) -> None:
        self.bufsize = bufsize
        self.seed = seed

    def __call__(self, samples: Iterable[dict[str, Any]]) -> Iterator[dict[str, Any]]:
        rng = random.Random(self.seed("shuffle"))
        yield from wds.shuffle(self.bufsize, initial=min(self.bufsize, 100), rng=rng)(samples)


class ResampledShards:
    """Shard URLs drawn with replacement forever, as WebDataset's ``ResampledShards``.

    WebDataset's own class also counts its iterations, which a resumed run without loader
    workers restarts from 0; this one depends on :class:`StreamSeed` alone.

    Args:
        urls: shard paths or URLs.
        seed: where the RNG's seed comes from.
    """

    def __init__(self, urls: list[str], seed: StreamSeed) -> None:
        if not urls:
            raise ValueError("no shards to draw from")
        self.urls = list(urls)
        self.seed = seed

    def __call__(self) -> Iterator[dict[str, str]]:
        rng = random.Random(self.seed("shards"))
        while True:
            yield {"url": self.urls[rng.randrange(len(self.urls))]}
