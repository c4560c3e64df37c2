"""``python -m lit_mrl embed``: embed a sharded dataset or a folder of audio with a trained encoder.

Loader workers decode (and for plain files resample) tracks; the main process computes
each track's log-mel on the device, cuts MULE's timeline of windows (see
:mod:`lit_mrl.timeline`) and packs the windows of many tracks into fixed-size encoder
batches. Output goes to :mod:`lit_mrl.embedding_store`: parts per split plus
``index.json``; a rerun skips tracks already in complete parts.

Sample rates: shards are refused unless ``info.json``'s rate is the model's (shards are
resampled once, with care, by the sharder); plain audio files are resampled with soxr.
Tracks that cannot be used (undecodable, NaN/Inf, empty, unknown labels) are listed in
``errors.jsonl`` in the output folder and skipped.
"""

from __future__ import annotations

import argparse
import json
import sys
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any, TextIO

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader
from tqdm import tqdm

from lit_mrl.checkpoints import load_pretrained
from lit_mrl.embed_inputs import open_input
from lit_mrl.embedding_store import (
    INDEX_NAME,
    done_keys,
    existing_parts,
    read_index,
    write_index,
    write_part,
)
from lit_mrl.timeline import TimelineEmbedder

ERRORS_NAME = "errors.jsonl"
# index.json fields that must agree for a rerun to append to an existing output folder
RESUME_FIELDS = ("input", "checkpoint", "random_init", "seed", "window_seconds", "hop_seconds")


def build_random_module(configs: list[str], seed: int, num_tags: int) -> nn.Module:
    """Instantiate the ``model`` of training configs with fresh random weights.

    Only the ``model`` section of each YAML is read (later files override earlier ones,
    as with ``fit -c a.yaml -c b.yaml``); nothing is trained.

    Args:
        configs: YAML files, e.g. ``configs/pretrain/contrastive.yaml`` plus overlays.
        seed: seeds the weight initialisation.
        num_tags: filled in when the model takes ``num_tags`` and no config sets it
            (the head does not change the embeddings).
    """
    import yaml
    from jsonargparse import ActionConfigFile, ArgumentParser
    from lightning import LightningModule

    import lit_mrl.methods  # noqa: F401  (short class names resolve)

    parser = ArgumentParser(exit_on_error=False)
    parser.add_argument("--config", action=ActionConfigFile)
    parser.add_subclass_arguments(LightningModule, "model", required=True)
    args = []
    for config in configs:
        content = yaml.safe_load(Path(config).read_text()) or {}
        if "model" in content:
            args += ["--config", yaml.safe_dump({"model": content["model"]})]
    parsed = parser.parse_args(args)
    init_args = parsed.model.init_args
    if "num_tags" in init_args and init_args.num_tags is None:
        init_args.num_tags = num_tags
    torch.manual_seed(seed)
    return parser.instantiate_classes(parsed).model.eval()


def parse_args(args: list[str] | None) -> argparse.Namespace:
    """The command line of ``python -m lit_mrl embed``."""
    parser = argparse.ArgumentParser(
        prog="python -m lit_mrl embed",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
        description="Embed a shard folder or audio files: one window every hop, track "
        "embedding = mean of the timeline. Resumable: reruns skip embedded tracks.",
    )
    model = parser.add_mutually_exclusive_group(required=True)
    model.add_argument("--checkpoint", help="a .ckpt written by `python -m lit_mrl fit`")
    model.add_argument(
        "--random-init",
        nargs="+",
        metavar="CONFIG",
        help="training config YAML(s) whose model is built with random weights (a baseline)",
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of --random-init weights")
    parser.add_argument(
        "--input", required=True, help="shard folder, audio folder or text file of paths"
    )
    parser.add_argument("--out", required=True, help="output folder (resumed if it exists)")
    parser.add_argument(
        "--splits", nargs="+", help="splits to embed (shards: default all; files: one name)"
    )
    parser.add_argument("--batch-windows", type=int, default=128, help="windows per forward")
    parser.add_argument("--window-seconds", type=float, default=3.0)
    parser.add_argument("--hop-seconds", type=float, default=2.0)
    parser.add_argument("--device", default="auto", help="auto (cuda if available), cpu, cuda:0")
    parser.add_argument("--num-workers", type=int, default=2, help="decoding processes")
    parser.add_argument("--part-size", type=int, default=512, help="tracks per output part")
    parser.add_argument("--bf16", action="store_true", help="bfloat16 autocast for the encoder")
    parser.add_argument(
        "--chunk-seconds", type=float, default=60.0, help="audio per STFT call (long tracks)"
    )
    return parser.parse_args(args)


def _resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def _check_resumable(out: Path, index: dict[str, Any]) -> dict[str, Any]:
    """The ``splits`` of an existing index, after checking it was made the same way."""
    if not (out / INDEX_NAME).is_file():
        return {}
    old = read_index(out)
    for name in (*RESUME_FIELDS, "embed_dim"):
        if old.get(name) != index[name]:
            raise SystemExit(
                f"{out} holds embeddings made with {name}={old.get(name)!r}, this run has "
                f"{name}={index[name]!r}: use another --out folder"
            )
    return dict(old.get("splits", {}))


class SplitWriter:
    """Collects embedded tracks of one split into parts and keeps ``index.json`` current.

    Args:
        out: output folder.
        split: split name.
        part_size: tracks per part.
        index: the index to update (its ``splits`` entry for ``split``) and rewrite.
    """

    def __init__(self, out: Path, split: str, part_size: int, index: dict[str, Any]) -> None:
        self.out, self.split, self.part_size, self.index = out, split, part_size, index
        self.parts = [p.name for p in existing_parts(out, split)]
        self.done = done_keys(out, split)
        self.num_samples = len(self.done)
        self.rows: list[dict[str, Any]] = []

    def add(self, row: dict[str, Any]) -> None:
        """Buffer one track (a row for :func:`write_part`); write a part when full."""
        self.rows.append({**row, "label": np.asarray(row["label"])})
        if len(self.rows) >= self.part_size:
            self.flush()

    def flush(self) -> None:
        """Write buffered tracks as the next part and update the index."""
        if self.rows:
            # after parts were deleted by hand the numbers have gaps: continue after the last
            number = int(self.parts[-1][-10:-4]) + 1 if self.parts else 0
            path = write_part(self.out, self.split, number, self.rows)
            self.parts.append(path.name)
            self.num_samples += len(self.rows)
            self.rows = []
        self.index["splits"][self.split] = {"num_samples": self.num_samples, "parts": self.parts}
        write_index(self.out, self.index)


def embed_split(
    embedder: TimelineEmbedder, loader: DataLoader, writer: SplitWriter, errors: TextIO, total: int
) -> tuple[int, int]:
    """Embed every track ``loader`` yields into ``writer``; returns (embedded, failed)."""
    failed = embedded = 0
    bar = tqdm(total=total, unit="track", desc=writer.split, dynamic_ncols=True)

    def usable() -> Iterator[dict[str, Any]]:
        nonlocal failed
        for item in loader:
            if "error" in item:
                failed += 1
                record = {"split": writer.split, **item}
                errors.write(json.dumps(record) + "\n")
                errors.flush()
                tqdm.write(f"skipped {item['key'] or item['source']}: {item['error']}")
                bar.update()
                continue
            yield item

    for row in embedder.embed_tracks(usable()):
        writer.add(row)
        embedded += 1
        bar.update()
    writer.flush()
    bar.close()
    return embedded, failed


def main(args: list[str] | None = None) -> None:
    """Run ``python -m lit_mrl embed``; ``args`` defaults to ``sys.argv[2:]``."""
    opts = parse_args(sys.argv[2:] if args is None else args)
    file_split = opts.splits[0] if opts.splits else "all"
    source = open_input(opts.input, file_split)
    if source.kind == "files" and opts.splits and len(opts.splits) != 1:
        raise SystemExit("audio-file input is one split: give at most one --splits name")
    splits = opts.splits or list(source.sizes)
    unknown = [s for s in splits if s not in source.sizes]
    if unknown:
        raise SystemExit(f"splits {unknown} are not in {source.path} (has {list(source.sizes)})")
    # rebuilding a module whose hparams hold its encoder warns; harmless here
    warnings.filterwarnings("ignore", message=".*is an instance of `nn.Module`.*")
    if opts.checkpoint:
        module = load_pretrained(opts.checkpoint)
    else:
        module = build_random_module(opts.random_init, opts.seed, max(len(source.vocabulary), 2))
    source.check_sample_rate(module.sample_rate)
    device = _resolve_device(opts.device)
    embedder = TimelineEmbedder(
        module,
        opts.window_seconds,
        opts.hop_seconds,
        opts.batch_windows,
        device,
        opts.bf16,
        opts.chunk_seconds,
    )
    out = Path(opts.out)
    out.mkdir(parents=True, exist_ok=True)
    index = {
        "embed_dim": embedder.embed_dim,
        "task": source.task,
        "vocabulary": source.vocabulary,
        "sample_rate": embedder.sample_rate,
        "window_seconds": opts.window_seconds,
        "hop_seconds": opts.hop_seconds,
        "checkpoint": str(Path(opts.checkpoint).resolve()) if opts.checkpoint else None,
        "random_init": [str(Path(c).resolve()) for c in opts.random_init or []] or None,
        "seed": None if opts.checkpoint else opts.seed,
        "input": str(source.path),
        "input_kind": source.kind,
        "model_class": f"{type(module).__module__}.{type(module).__qualname__}",
        "encoder_class": f"{type(module.encoder).__module__}.{type(module.encoder).__qualname__}",
    }
    index["splits"] = _check_resumable(out, index)
    min_samples = module.frontend.hop_length
    failed_total = 0
    with open(out / ERRORS_NAME, "w") as errors:
        for split in splits:
            writer = SplitWriter(out, split, opts.part_size, index)
            done = writer.done
            todo = max(source.sizes[split] - len(done), 0)
            print(
                f"{split}: {len(done)} tracks already embedded in {len(writer.parts)} parts "
                f"(skipped), {todo} to embed on {device}"
            )
            dataset = source.tracks(split, embedder.sample_rate, min_samples, done)
            loader = DataLoader(
                dataset,
                batch_size=None,
                num_workers=opts.num_workers,
                pin_memory=device.type == "cuda",
            )
            embedded, failed = embed_split(embedder, loader, writer, errors, todo)
            print(f"{split}: embedded {embedded}, failed {failed}, {writer.num_samples} in total")
            failed_total += failed
    report = f"; {failed_total} errors listed in {out / ERRORS_NAME}" if failed_total else ""
    print(f"wrote {out / INDEX_NAME}{report}")
