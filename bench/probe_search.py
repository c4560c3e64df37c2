"""Probe search: the whole grid as batched ensembles vs the same configs one by one.

Synthetic embeddings sized like a demo task (Gaussian classes, ``--train`` x ``--dim``,
``--classes`` classes). Every method trains every config of ``--grid`` for the same
steps with the same seed (same initial weights, same minibatch order), then scores
it on the validation and test splits; the wall time covers training and scoring.

* ``ensemble``: :func:`lit_mrl.probe.search.run_search` with a fixed-step
  :class:`~lit_mrl.probe.search.Budget` (patience 0: no early stopping), one
  :class:`~lit_mrl.probe.ensemble.StackedMLP` per hidden-layer shape (what
  ``python -m lit_mrl probe`` does);
* ``loop``: a plain PyTorch loop per config (MLPHead, torch.optim.Adam, the same
  schedule): the compute-only lower bound of training one by one;
* ``lightning``: a :class:`~lit_mrl.probe.module.ProbeModule` + ``Trainer.fit`` per
  config, i.e. what running ``python -m lit_mrl fit`` once per config costs.

The baselines train and score every config on validation, which is the search phase of
``run_search`` (timed from its progress lines); ``run_search`` then trains the selected
config once more per seed (one seed here), scores it on test and bootstraps an interval
(``--replicates``), which its total time includes (here the seed's run is the search's
own, so nothing trains again). Selections are compared; they match when dropout is 0
(``--dropout 0``) and on a clearly separable problem, since the loop draws dropout masks
its own way.

Example::

    python -m bench.probe_search --dim 512 --train 1000 --classes 10 --epochs 10
"""

import argparse
import logging
import math
import tempfile
import time
import warnings

import lightning as L
import numpy as np
import torch

from lit_mrl.data.embedding_datamodule import EmbeddingDataModule, ShuffledBatches, write_arrays
from lit_mrl.formats.embeddings import write_index
from lit_mrl.losses import l2_penalty, probe_loss
from lit_mrl.metrics import score_predictions
from lit_mrl.models.heads import seeded_mlp_head
from lit_mrl.probe.ensemble import ADAM_EPS
from lit_mrl.probe.grid import GRIDS, Grid, ProbeConfig
from lit_mrl.probe.module import ProbeModule
from lit_mrl.probe.search import Budget, run_search, select_best
from lit_mrl.schedules import WarmupCosineLR
from lit_mrl.tasks import ranking_metrics


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--train", type=int, default=1000, help="training embeddings")
    parser.add_argument("--eval", type=int, default=300, help="validation and test embeddings each")
    parser.add_argument("--dim", type=int, default=512, help="embedding size D")
    parser.add_argument("--classes", type=int, default=10)
    parser.add_argument("--grid", default="small", choices=sorted(GRIDS))
    parser.add_argument(
        "--hidden", type=int, nargs="*", help="one shape for the whole grid instead"
    )
    parser.add_argument("--dropout", type=float, nargs="+", help="override the grid's dropout axis")
    parser.add_argument("--weight-decay", type=float, nargs="+", help="override the L2 axis")
    parser.add_argument("--lr", type=float, nargs="+", help="override the learning-rate axis")
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: default)")
    parser.add_argument(
        "--replicates", type=int, default=1000, help="run_search's bootstrap replicates"
    )
    parser.add_argument(
        "--baselines", nargs="*", default=["loop", "lightning"], choices=["loop", "lightning"]
    )
    parser.add_argument("--device", default="cpu")
    return parser.parse_args(argv)


def synthetic_embeddings(root: str, opts: argparse.Namespace) -> EmbeddingDataModule:
    """Gaussian class clusters, noisy enough that configs differ on validation."""
    rng = np.random.default_rng(opts.seed)
    centres = rng.standard_normal((opts.classes, opts.dim)) / math.sqrt(opts.dim) * 3.0
    for split, size in (("train", opts.train), ("valid", opts.eval), ("test", opts.eval)):
        classes = rng.integers(0, opts.classes, size)
        emb = centres[classes] + rng.standard_normal((size, opts.dim))  # ~85-95% accuracy
        write_arrays(root, split, emb, classes)
    vocabulary = [f"class{i}" for i in range(opts.classes)]
    write_index(root, {"embed_dim": opts.dim, "task": "multiclass", "vocabulary": vocabulary})
    return EmbeddingDataModule(root, batch_size=opts.batch_size, seed=opts.seed)


def score(data: EmbeddingDataModule, head: torch.nn.Module) -> dict:
    """Validation metrics of one trained probe (what the search scores per config)."""
    device = next(head.parameters()).device
    with torch.no_grad():
        val = data.load("val")
        preds = data.to_original_units(head(val.embeddings.to(device)).cpu())
    return score_predictions(data.task, preds, data.original_labels("val"))[0]


def train_loop(
    data: EmbeddingDataModule, config: ProbeConfig, steps: int, warmup: int, seed: int, device: str
) -> dict:
    """One probe in plain PyTorch: the same init, batches, loss, Adam and schedule."""
    train = data.load("train")
    embeddings, labels = train.embeddings.to(device), train.labels.to(device)
    head = seeded_mlp_head(
        data.embed_dim, len(data.vocabulary), list(config.hidden_dims), config.dropout, seed
    ).to(device)
    optimizer = torch.optim.Adam(head.parameters(), lr=config.lr, eps=ADAM_EPS)
    schedule = WarmupCosineLR(optimizer, warmup_steps=warmup, total_steps=steps)
    batches, step = ShuffledBatches(len(train), data.batch_size, seed), 0
    while step < steps:
        for index in batches:
            index = index.to(device)
            loss = probe_loss(head(embeddings[index]), labels[index], data.task)
            loss = loss + l2_penalty([lin.weight for lin in head.linears()], config.weight_decay)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            schedule.step()
            step += 1
            if step == steps:
                break
    return score(data, head.eval())


def train_lightning(
    data: EmbeddingDataModule, config: ProbeConfig, steps: int, warmup: int, seed: int, device: str
) -> dict:
    """One probe through ProbeModule + Trainer.fit (the `lit_mrl fit` path)."""
    probe = ProbeModule(
        data.task, len(data.vocabulary), in_dim=data.embed_dim, hidden_dims=list(config.hidden_dims),
        dropout=config.dropout, weight_decay=config.weight_decay, lr=config.lr,
        warmup_steps=warmup, max_steps=steps, init_seed=seed,
    )  # fmt: skip
    single = EmbeddingDataModule(str(data.root), batch_size=data.batch_size, seed=seed)
    L.Trainer(
        accelerator="cpu" if device == "cpu" else "gpu", devices=1, max_steps=steps, logger=False, enable_checkpointing=False,
        enable_progress_bar=False, enable_model_summary=False, limit_val_batches=0,
    ).fit(probe, single)  # fmt: skip
    return score(data, probe.eval().head)


def main(argv: list[str] | None = None) -> None:
    opts = parse_args(argv)
    if opts.threads:
        torch.set_num_threads(opts.threads)
    warnings.filterwarnings("ignore")
    logging.getLogger("lightning.pytorch").setLevel(logging.ERROR)  # one Trainer per config
    base = GRIDS[opts.grid]
    grid = Grid(
        hidden_dims=(tuple(opts.hidden),) if opts.hidden is not None else base.hidden_dims,
        dropout=tuple(opts.dropout or base.dropout),
        weight_decay=tuple(opts.weight_decay or base.weight_decay),
        lr=tuple(opts.lr or base.lr),
    )
    configs = grid.configs()
    with tempfile.TemporaryDirectory() as root:
        data = synthetic_embeddings(root, opts)
        steps = opts.epochs * math.ceil(opts.train / opts.batch_size)
        warmup = steps // 10
        keys = ranking_metrics(data.task, "default")
        print(
            f"{len(configs)} configs ({sorted({c.hidden_dims for c in configs})}), {opts.train} x "
            f"{opts.dim}-d, {opts.classes} classes, {steps} steps of {opts.batch_size}, "
            f"{torch.get_num_threads()} threads, {opts.device}"
        )
        marks: list[float] = []  # one per trained ensemble, then one after the seeds
        budget = Budget(steps, warmup, opts.batch_size, eval_every=steps, patience=0)
        start = time.perf_counter()
        search = run_search(
            data.probe_data, grid, budget, [opts.seed], device=opts.device, replicates=opts.replicates,
            progress=lambda _: marks.append(time.perf_counter()),
        )  # fmt: skip
        total = time.perf_counter() - start
        times = {"ensemble": marks[-2] - start}  # the search phase: every config trained
        selected = {"ensemble": search["selected"]}
        val = {"ensemble": [c["val"] for c in search["configs"]]}
        for name in opts.baselines:
            train = train_loop if name == "loop" else train_lightning
            start = time.perf_counter()
            val[name] = [train(data, c, steps, warmup, opts.seed, opts.device) for c in configs]
            times[name] = time.perf_counter() - start
            selected[name] = select_best(val[name], keys)
    print(
        f"run_search in all: {total:.2f} s (search {times['ensemble']:.2f} s, the selected "
        f"config again + test + {opts.replicates} bootstrap replicates "
        f"{total - times['ensemble']:.2f} s)"
    )
    for name, seconds in times.items():
        ratio = (
            "" if name == "ensemble" else f"  ensemble is {seconds / times['ensemble']:.1f}x faster"
        )
        diff = max(
            abs(a[keys[0]] - b[keys[0]]) for a, b in zip(val[name], val["ensemble"], strict=True)
        )
        print(
            f"{name:>9}: {seconds:7.2f} s  selected config {selected[name]} "
            f"{configs[selected[name]]}  max |val {keys[0]} - ensemble| {diff:.4f}{ratio}"
        )


if __name__ == "__main__":
    main()
