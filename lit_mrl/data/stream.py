"""The stages between shard files and training samples, run inside loader workers.

:class:`ShardSamples` expands shard URLs into samples with the shard reader every tool
uses (:func:`lit_mrl.formats.shards.iter_shard`: only ``.flac`` and ``.json`` members, safe
keys, valid JSON); a truncated or unreadable shard is skipped with a warning that names it
and counts the samples lost. :class:`CropSample` decodes only the samples its crops need
(:func:`lit_mrl.data.crops.read_crops`) and checks every sample's rate against
``info.json``. A bad sample is skipped with a warning naming it; if nothing usable comes
out of many samples in a row, the stream stops with an error instead of spinning forever.
A shard replaced on disk after it was scanned is a broken shard too: the first sample
read from it after the change is refused (:class:`~lit_mrl.formats.shards.MemberFile` checks
it), a warning names the shard, and the other samples of that scan are skipped; the next
pass over the shard scans it afresh.
"""

from __future__ import annotations

import warnings
import zlib
from collections.abc import Iterable, Iterator
from typing import Any

import numpy as np
import torch

from lit_mrl.data.crops import Span, center_span, paired_spans, random_span, read_crops
from lit_mrl.data.labels import encode_labels
from lit_mrl.data.seeds import StreamSeed
from lit_mrl.formats.info import Task
from lit_mrl.formats.shards import ShardChangedError, iter_shard

MAX_CONSECUTIVE_FAILURES = 200


class ShardSamples:
    """Shard URLs -> ``{"key", "flac", "json", "url"}`` samples, skipping broken shards.

    ``flac`` is where the audio lies in the shard (:class:`~lit_mrl.formats.shards.FlacRef`),
    not its bytes: a shuffle buffer of samples holds metadata, whatever the track lengths.
    ``scan`` numbers the passes over shards, so a later stage can tell the samples of a
    scan that went stale from those of the next one.

    Args:
        shard_sizes: samples per shard file name, from ``info.json`` (to count losses).
    """

    def __init__(self, shard_sizes: dict[str, int]) -> None:
        self.shard_sizes = shard_sizes
        self._scans = 0

    def __call__(self, urls: Iterable[dict[str, str]]) -> Iterator[dict[str, Any]]:
        for entry in urls:
            url = entry["url"]
            read = 0
            self._scans += 1
            try:
                for sample in iter_shard(url, audio="ref"):  # the audio stays on disk
                    read += 1
                    yield {**sample, "url": url, "scan": self._scans}
            except ValueError as err:
                expected = self.shard_sizes.get(url.rsplit("/", 1)[-1])
                lost = f"{expected - read} of {expected}" if expected else "the rest"
                warnings.warn(
                    f"skipping a broken shard: {url} after {read} samples ({lost} samples "
                    f"lost): {err}",
                    stacklevel=1,
                )


class CropSample:
    """Crop one sample into ``num_views`` clips, decoding only what the crops need.

    A picklable callable (it travels to loader workers) that maps a sample stream to a
    stream of ``{"audio": (V, num_samples), "labels", "key"}``. Training draws random
    crops; evaluation takes the centre crop, or for two views a pair drawn from an RNG
    seeded by the sample key, so validation is deterministic.

    Args:
        num_samples: crop length in samples.
        num_views: crops per track (1, or 2 for contrastive pairs).
        max_offset: largest distance between two crop centres, in samples.
        task: the dataset's task type.
        vocabulary: label names from ``info.json``.
        sample_rate: the rate ``info.json`` declares; samples at another rate are skipped.
        train: random (True) or deterministic (False) crops.
        seed: seeds the random crops (training only).
    """

    def __init__(
        self,
        num_samples: int,
        num_views: int,
        max_offset: int,
        task: Task,
        vocabulary: list[str],
        sample_rate: int,
        train: bool,
        seed: StreamSeed | None = None,
    ) -> None:
        self.num_samples = num_samples
        self.num_views = num_views
        self.max_offset = max_offset
        self.task = task
        self.vocabulary = vocabulary
        self.sample_rate = sample_rate
        self.train = train
        self.seed = seed if seed is not None else StreamSeed(0)
        self._rng: np.random.Generator | None = None
        self._rng_epoch = -1

    def _rng_for(self, key: str) -> np.random.Generator:
        if not self.train:
            return np.random.default_rng(zlib.crc32(key.encode()))
        if self._rng is None or self._rng_epoch != self.seed.epoch:
            # made inside the worker that uses it, anew each epoch
            self._rng = np.random.default_rng(self.seed("crops"))
            self._rng_epoch = self.seed.epoch
        return self._rng

    def spans(self, length: int, key: str) -> list[Span]:
        """Where each view comes from, for a track of ``length`` samples."""
        if not self.train and self.num_views == 1:
            return [center_span(length, self.num_samples)]
        rng = self._rng_for(key)
        if self.num_views == 1:
            return [random_span(length, self.num_samples, rng)]
        if self.num_views == 2:
            return list(paired_spans(length, self.num_samples, self.max_offset, rng))
        return [random_span(length, self.num_samples, rng) for _ in range(self.num_views)]

    def crop(self, sample: dict[str, Any]) -> dict[str, Any]:
        """One sample's views and labels.

        Raises:
            ValueError: naming the problem (undecodable, wrong rate, empty, bad labels).
        """
        labels = encode_labels({"key": sample["key"], **sample["json"]}, self.task, self.vocabulary)

        def choose(length: int, rate: int) -> list[Span]:
            if rate != self.sample_rate:
                raise ValueError(f"decoded at {rate} Hz but info.json says {self.sample_rate} Hz")
            if length == 0:
                raise ValueError("the audio is empty")
            return self.spans(length, sample["key"])

        views = read_crops(sample["flac"], self.num_samples, choose)
        return {
            "audio": torch.from_numpy(np.stack(views)),  # (V, num_samples)
            "labels": labels,
            "key": sample["key"],
        }

    def __call__(self, samples: Iterable[dict[str, Any]]) -> Iterator[dict[str, Any]]:
        failures = 0
        stale: set[tuple[str, int]] = set()  # (shard, scan): changed since that scan
        for sample in samples:
            item, error = self._try_crop(sample, stale)
            if item is not None:
                failures = 0
                yield item
                continue
            failures += 1  # a sample of a stale scan counts too
            if failures >= MAX_CONSECUTIVE_FAILURES:
                raise RuntimeError(
                    f"{failures} samples in a row could not be used (last: {sample['key']!r} "
                    f"of {sample['url']}: {error}): check the shards with python -m "
                    "data_prep.verify"
                )

    def _try_crop(
        self, sample: dict[str, Any], stale: set[tuple[str, int]]
    ) -> tuple[dict[str, Any] | None, str]:
        """The sample's crop, or None and why (warned about, once per changed shard)."""
        scan = (sample["url"], sample["scan"])
        if scan in stale:
            return None, "its shard changed on disk since it was read"
        try:
            return self.crop(sample), ""
        except ShardChangedError as err:
            stale.add(scan)
            warnings.warn(
                f"skipping a broken shard: {err}; the other samples read from it before the "
                "change are skipped too (the next pass reads it afresh)",
                stacklevel=1,
            )
            return None, str(err)
        except (ValueError, KeyError) as err:
            warnings.warn(
                f"skipping sample {sample['key']!r} of {sample['url']}: {err}", stacklevel=1
            )
            return None, str(err)
