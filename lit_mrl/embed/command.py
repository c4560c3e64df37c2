"""``python -m lit_mrl embed``: embed a sharded dataset or a folder of audio, on many devices.

Loader workers decode tracks; the main process computes each track's log-mel on the
device, cuts its timeline of windows (:mod:`lit_mrl.embed.windows`) and packs the
windows of many tracks into fixed-size encoder batches (:mod:`lit_mrl.embed.extractor`).
Output is the format of :mod:`lit_mrl.formats.embeddings`: parts per split plus
``index.json``.

A rerun resumes: tracks already in recorded parts are skipped (parts ``index.json``
lists, and those a run killed before it finished recorded in its journals; see
:mod:`lit_mrl.formats.embedding_index`). ``index.json`` holds a fingerprint of the weights
(and the windowing and input), so a rerun with another checkpoint, other settings or
another input refuses to mix its embeddings with the old ones; ``--overwrite`` starts
over. One run at a time may write a folder (a lock). Tracks that cannot be used
(undecodable, NaN/Inf audio, a NaN/Inf embedding, empty, unknown labels, samples lost in
a truncated or changed shard) are listed in ``errors.jsonl`` and make the exit code 1;
they are never written.

Many devices and nodes: ``--trainer.devices N`` (and ``--trainer.num_nodes``) runs N
processes through Lightning Fabric, which also picks up ``torchrun`` and SLURM launches.
Each rank embeds a disjoint share of the shards (or tracks), writes its own parts
(``<split>-r<rank>-<n>.npz``) and errors, and rank 0 merges the index once every rank is
done. A rerun with any number of processes resumes from the parts of all of them.
"""

from __future__ import annotations

import ctypes
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from jsonargparse.typing import NonNegativeInt, PositiveFloat, PositiveInt

from lit_mrl.embed.output import ERRORS_NAME
from lit_mrl.errors import EXIT_OK, EXIT_SOME_FAILED, UsageError


@dataclass
class Launch:
    """Where ``embed`` runs, as the Lightning Trainer's options of the same names.

    Args:
        accelerator: auto, cpu, gpu, cuda, mps.
        devices: devices per node (a count, or a list of indices such as ``[1]``).
        num_nodes: machines.
    """

    accelerator: str = "auto"
    devices: int | list[int] | str = 1
    num_nodes: int = 1


def embed(
    input: str,
    out: str,
    checkpoint: str | None = None,
    random_init: list[str] | str | None = None,
    model: str | None = None,
    seed: int = 0,
    splits: list[str] | str | None = None,
    window_seconds: PositiveFloat | None = None,
    hop_seconds: PositiveFloat | None = None,
    batch_windows: PositiveInt = 128,
    trainer: Launch | None = None,
    num_workers: NonNegativeInt = 2,
    part_size: PositiveInt = 512,
    bf16: bool = False,
    chunk_seconds: PositiveFloat = 60.0,
    overwrite: bool = False,
    allow_class: list[str] | str | None = None,
) -> int:
    """Embed every track: one window every hop, track embedding = mean of the timeline.

    Args:
        input: a shard folder (with info.json), an audio folder, or a text file of paths.
        out: output folder; a rerun resumes it.
        checkpoint: a .ckpt written by `python -m lit_mrl fit`, or an encoder folder
            written by `python -m lit_mrl export` / `import_mule` (config.json +
            model.safetensors).
        random_init: training config YAML(s) whose model is built with random weights
            (one path, or a list: '[a.yaml, b.yaml]').
        model: a YAML describing an AudioEncoder, e.g. configs/baselines/logmel_stats.yaml.
        seed: seed of --random_init / --model weights.
        splits: splits to embed, one or a list '[train, test]' (shards: default all; files:
            one name, default "all").
        window_seconds: window length in seconds (default: the encoder's rule, 3).
        hop_seconds: distance between window starts in seconds (default: the encoder's
            rule, 2).
        batch_windows: windows per encoder forward.
        trainer: accelerator, devices and num_nodes, as for `fit` (--trainer.devices 4).
        num_workers: decoding processes.
        part_size: tracks per output part.
        bf16: bfloat16 autocast for the encoder.
        chunk_seconds: audio per STFT call for long tracks.
        overwrite: delete the embeddings already in --out and start over.
        allow_class: class paths outside lit_mrl that --checkpoint may build.

    Returns:
        0 if every track was embedded, 1 if some failed (listed in errors.jsonl).
    """
    import torch

    from lit_mrl.embed.extractor import TimelineEmbedder
    from lit_mrl.embed.models import load_audio_encoder
    from lit_mrl.embed.output import finish_index, prepare_output, start_index
    from lit_mrl.embed.sources import open_input
    from lit_mrl.formats.embeddings import EmbeddingIndex
    from lit_mrl.formats.files import lock_dir

    splits, random_init, allow_class = (
        [v] if isinstance(v, str) else v for v in (splits, random_init, allow_class)
    )
    source = open_input(input, splits[0] if splits else "all")
    if source.kind == "files" and splits and len(splits) != 1:
        raise UsageError("audio-file input is one split: give at most one --splits name")
    wanted = splits or list(source.sizes)
    unknown = [s for s in wanted if s not in source.sizes]
    if unknown:
        raise UsageError(f"splits {unknown} are not in {source.path} (has {list(source.sizes)})")
    audio_encoder, made_by = load_audio_encoder(
        checkpoint, random_init, model, seed, allow_class or []
    )
    source.check_sample_rate(audio_encoder.sample_rate)
    return_freed_memory()  # before the loader workers fork: they inherit it
    fabric = launch(trainer or Launch())
    embedder = TimelineEmbedder(
        audio_encoder, window_seconds, hop_seconds, batch_windows, fabric.device, bf16,
        chunk_seconds,
    )  # fmt: skip
    settings = {
        "sample_rate": embedder.sample_rate,
        "window_seconds": embedder.window_seconds,
        "hop_seconds": embedder.hop_seconds,
        "input": str(source.path),
        "input_kind": source.kind,
        **made_by,
    }
    index = EmbeddingIndex(embedder.embed_dim, source.task, source.vocabulary, {}, settings)
    folder = Path(out)
    folder.mkdir(parents=True, exist_ok=True)
    rank, world = fabric.global_rank, fabric.world_size
    with lock_dir(folder, f"embed.r{rank:03d}", "another `python -m lit_mrl embed`"):
        if overwrite:  # rank 0 clears the folder while the others wait
            if rank == 0:
                index.splits = prepare_output(folder, index, overwrite=True)
        else:  # every rank checks (the same answer everywhere: no rank waits on a failed one)
            index.splits = prepare_output(folder, index, overwrite=False)
        fabric.barrier()  # every rank has read the folder before rank 0 rewrites its index
        if rank == 0:
            start_index(folder, index)
        fabric.barrier()  # before any rank journals a part
        share = Share(rank, world, num_workers, part_size)
        failed = run_splits(embedder, source, wanted, folder, share, index.splits)
        fabric.barrier()  # every rank's parts are written
        total = fabric.all_reduce(torch.tensor(failed, device=fabric.device), reduce_op="sum")
        failed = int(total)
        if rank == 0:
            finish_index(folder, index, world)
        fabric.barrier()  # rank 0's index is written before any rank leaves
    close_process_group()
    if rank == 0:
        report = f"; {failed} tracks failed, listed in {folder / ERRORS_NAME}" if failed else ""
        print(f"wrote {folder / 'index.json'}{report}")
    return EXIT_SOME_FAILED if failed else EXIT_OK


def close_process_group() -> None:
    """Shut down the process group (if any) before the interpreter exits.

    Left to interpreter teardown, gloo's worker threads can be destroyed while still
    joinable, which aborts a rank ("terminate called without an active exception") after
    all its work is written, and torchrun then reports the whole run failed.
    """
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def return_freed_memory() -> None:
    """Have glibc hand large freed buffers back to the system at once (Linux only).

    Audio blocks and log-mel chunks are a few MB each; by default glibc keeps such freed
    buffers in its heap, which looks like memory growing with track length. With an mmap
    threshold of 128 kB they are mapped and unmapped instead. Elsewhere this does nothing.
    """
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return
    m_mmap_threshold = -3  # mallopt's M_MMAP_THRESHOLD
    libc.mallopt(m_mmap_threshold, 128 * 1024)


def launch(options: Launch) -> Any:
    """Start the processes ``options`` asks for (or join torchrun's / SLURM's); a Fabric."""
    from lightning.fabric import Fabric

    fabric = Fabric(
        accelerator=options.accelerator,
        devices=options.devices,
        num_nodes=options.num_nodes,
        strategy="auto",
    )
    fabric.launch()
    return fabric


@dataclass
class Share:
    """This process's share of the work.

    Args:
        rank: global rank.
        world: number of processes.
        num_workers: decoding processes of this rank.
        part_size: tracks per output part.
    """

    rank: int
    world: int
    num_workers: int
    part_size: int

    @property
    def writer(self) -> str | None:
        """Part series of this rank (``None``: the plain series of a one-process run)."""
        return None if self.world == 1 else f"r{self.rank:03d}"

    @property
    def errors_name(self) -> str:
        """This rank's error list."""
        return ERRORS_NAME if self.world == 1 else f"errors.r{self.rank:03d}.jsonl"


def run_splits(
    embedder: Any,
    source: Any,
    splits: list[str],
    folder: Path,
    share: Share,
    index_splits: dict[str, Any],
) -> int:
    """Embed this rank's share of every split into ``folder``; returns the tracks lost.

    ``index_splits``: the parts kept from earlier runs, whose tracks are skipped.
    """
    from torch.utils.data import DataLoader

    from lit_mrl.embed.output import done_keys
    from lit_mrl.formats.embeddings import PartWriter

    failed = 0
    with open(folder / share.errors_name, "w") as errors:
        for split in splits:
            listed = index_splits.get(split)
            done = done_keys(folder, listed.parts) if listed else set()
            todo = max(source.sizes[split] - len(done), 0)
            mine = todo if share.world == 1 else f"about {todo // share.world}"
            print(f"{split}: {len(done)} tracks already embedded (skipped), {mine} to embed"
                  + ("" if share.world == 1 else f" on rank {share.rank}"))  # fmt: skip
            dataset = source.tracks(
                split, embedder.sample_rate, embedder.min_samples, done, share.rank,
                share.world, embedder.chunk_samples,
            )  # fmt: skip
            loader = DataLoader(dataset, batch_size=None, num_workers=share.num_workers)
            writer = PartWriter(folder, split, share.part_size, share.writer)
            bar_total = todo if share.world == 1 else None
            embedded, lost = embed_split(embedder, loader, writer, errors, bar_total, split)
            print(f"{split}: embedded {embedded}, failed {lost}")
            failed += lost
    return failed


def embed_split(
    embedder: Any, loader: Any, writer: Any, errors: TextIO, total: int | None, split: str
) -> tuple[int, int]:
    """Embed every track ``loader`` yields into ``writer``; returns (embedded, lost)."""
    from tqdm import tqdm

    from lit_mrl.signals import DeferredInterrupt

    lost = embedded = 0
    bar = tqdm(total=total, unit="track", desc=split, dynamic_ncols=True)
    # Ctrl-C inside a decode would be swallowed and the track reported corrupt
    ctrl_c = DeferredInterrupt("stopping before the next track")

    def counted() -> Any:
        nonlocal lost
        for item in loader:
            ctrl_c.check()
            if "error" in item:  # the extractor drops the track's blocks so far
                lost += item["lost"]
                errors.write(json.dumps({"split": split, **item}) + "\n")
                errors.flush()
                what = item["key"] or f"{item['lost']} tracks of {item['source']}"
                tqdm.write(f"skipped {what}: {item['error']}")
                bar.update(item["lost"])
            yield item

    def keep(row: dict[str, Any]) -> None:
        nonlocal lost, embedded
        problem = non_finite(row)
        if problem:  # a broken encoder (NaN weights) or an overflow: never written
            lost += 1
            errors.write(json.dumps({"split": split, "key": row["key"], "error": problem,
                                     "lost": 1}) + "\n")  # fmt: skip
            errors.flush()
            tqdm.write(f"skipped {row['key']}: {problem}")
        else:
            writer.add(row)  # a full part is written at once: a rerun resumes from it
            embedded += 1
        bar.update()

    with ctrl_c:
        for row in embedder.embed_tracks(counted()):
            keep(row)
    writer.flush()
    bar.close()
    return embedded, lost


def non_finite(row: dict[str, Any]) -> str | None:
    """Why a track's embedding cannot be stored (NaN or Inf in a window), or None."""
    import numpy as np

    windows = np.asarray(row["timeline"])
    bad = int((~np.isfinite(windows)).reshape(len(windows), -1).any(axis=1).sum())
    if bad or not np.isfinite(row["embedding"]).all():
        return f"non-finite embedding (NaN or Inf in {bad} of {len(windows)} windows)"
    return None
