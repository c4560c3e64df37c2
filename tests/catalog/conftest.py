import json
from pathlib import Path

import numpy as np
import pytest

from lit_mrl.cli import main as cli_main
from lit_mrl.data.embedding_datamodule import write_arrays
from lit_mrl.formats.embeddings import write_index

SETTINGS = {"fingerprint": "model-a", "window_seconds": 3.0, "hop_seconds": 3.0,
            "sample_rate": 16000, "input": "/data/toy"}  # fmt: skip


def toy_store(root, task, dim=8, num_outputs=3, seed=0, settings=SETTINGS, parts=1):
    """Gaussian clusters per class; labels of the task's kind; an embedding fingerprint."""
    rng = np.random.default_rng(seed)
    centres = 2 * rng.standard_normal((num_outputs, dim))
    for split, size in (("train", 120), ("valid", 60), ("test", 60)):
        classes = rng.integers(0, num_outputs, size)
        emb = centres[classes] + rng.standard_normal((size, dim))
        labels = {
            "multiclass": classes,
            "multilabel": (np.eye(num_outputs)[classes] + (rng.random((size, num_outputs)) < 0.2)).clip(0, 1),
            "regression": 50 + 10 * emb[:, :num_outputs] + rng.standard_normal((size, num_outputs)),
        }[task]  # fmt: skip
        keys = [f"{split}-{i:04d}" for i in range(size)]
        for rows in np.array_split(np.arange(size), parts):
            write_arrays(root, split, emb[rows], labels[rows], [keys[i] for i in rows])
    vocabulary = [f"out{i}" for i in range(num_outputs)]
    write_index(root, {"embed_dim": dim, "task": task, "vocabulary": vocabulary, **settings})
    return root


def run_probe(root, out, task_name=None):
    grid = Path(out).parent / "grid.yaml"
    grid.write_text("hidden_dims: [[], [8]]\ndropout: [0.1]\nweight_decay: [0]\nlr: [1e-2]\n")
    extra = ["--task_name", task_name] if task_name else []
    code = cli_main(["probe", "--embeddings", str(root), "--out", str(out), "--grid", str(grid),
                     "--seeds", "2", "--steps", "60", "--batch_size", "32", "--wandb", "false",
                     "--bootstrap", "20", "--model_name", "toy", *extra])  # fmt: skip
    assert code == 0
    return json.loads((Path(out) / "results.json").read_text())


@pytest.fixture
def store_and_head(tmp_path):
    """A multi-label store in two parts per split and the head a probe run kept."""
    root = toy_store(tmp_path / "emb", "multilabel", parts=2)
    results = run_probe(root, tmp_path / "probe")
    return root, tmp_path / "probe", results


@pytest.fixture
def make_store():
    """``toy_store(root, task, ...)``: a synthetic embedding store with a fingerprint."""
    return toy_store


@pytest.fixture
def probe_run():
    """``run_probe(root, out)``: a quick probe search that keeps its head; results.json."""
    return run_probe
