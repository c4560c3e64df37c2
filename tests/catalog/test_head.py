import json
from pathlib import Path

import numpy as np
import pytest
import torch

from lit_mrl.catalog.head import read_head
from lit_mrl.catalog.thresholds import f1_thresholds
from lit_mrl.cli import main as cli_main
from lit_mrl.data.embedding_datamodule import write_arrays
from lit_mrl.errors import UsageError
from lit_mrl.formats.embeddings import load_split, write_index
from lit_mrl.metrics import score_predictions

SETTINGS = {"fingerprint": "model-a", "window_seconds": 3.0, "hop_seconds": 3.0,
            "sample_rate": 16000, "input": "/data/toy"}  # fmt: skip


def toy_store(root, task, dim=8, num_outputs=3, seed=0, settings=SETTINGS):
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
        write_arrays(root, split, emb, labels)
    vocabulary = [f"out{i}" for i in range(num_outputs)]
    write_index(root, {"embed_dim": dim, "task": task, "vocabulary": vocabulary, **settings})
    return root


def run_probe(root, out):
    grid = Path(out).parent / "grid.yaml"
    grid.write_text("hidden_dims: [[], [8]]\ndropout: [0.1]\nweight_decay: [0]\nlr: [1e-2]\n")
    code = cli_main(["probe", "--embeddings", str(root), "--out", str(out), "--grid", str(grid),
                     "--seeds", "2", "--steps", "60", "--batch_size", "32", "--wandb", "false",
                     "--bootstrap", "20", "--model_name", "toy"])  # fmt: skip
    assert code == 0
    return json.loads((Path(out) / "results.json").read_text())


@pytest.mark.parametrize("task", ["multiclass", "multilabel", "regression"])
def test_saved_head_reproduces_the_probe_test_metric(tmp_path, task):
    root = toy_store(tmp_path / "emb", task)
    results = run_probe(root, tmp_path / "out")
    head = read_head(tmp_path / "out")  # the results folder holds head/
    assert head.task == task
    assert head.vocabulary == ["out0", "out1", "out2"]
    assert head.num_seeds == 2
    assert head.config["embeddings"]["fingerprint"] == "model-a"
    test = load_split(root, "test")
    labels = torch.from_numpy(test.labels.astype(np.int64 if task == "multiclass" else np.float32))
    if task == "regression":  # the search scores labels round-tripped through z-scores
        stats = head.config["standardize"]["targets"]
        mean, std = (torch.tensor(stats[k], dtype=torch.float32) for k in ("mean", "std"))
        labels = (labels - mean) / std * std + mean
    outputs = head.outputs(torch.from_numpy(test.embeddings))  # (E, N, K)
    per_seed = [score_predictions(task, out, labels, "default", head.vocabulary)[0]
                for out in outputs]  # fmt: skip
    assert per_seed == results["test_per_seed"]  # seed by seed, exactly
    for name, value in results["test"].items():  # their mean (float32 sums): to rounding
        assert np.mean([s[name] for s in per_seed]) == pytest.approx(value, abs=1e-6), name
    ensemble = head.scores(torch.from_numpy(test.embeddings)).mean(0)
    scored = score_predictions(task, ensemble, labels, "default", head.vocabulary)[0]
    assert scored == pytest.approx(head.config["test_ensemble"], abs=1e-6)
    if task == "multilabel":
        assert len(head.config["thresholds"]) == 3
        assert all(0 < t < 1 for t in head.config["thresholds"])


def test_head_refuses_embeddings_of_another_model(tmp_path):
    root = toy_store(tmp_path / "emb", "multiclass")
    run_probe(root, tmp_path / "out")
    head = read_head(tmp_path / "out" / "head")
    head.check_embeddings(SETTINGS, 8, "emb")  # its own model: fine
    with pytest.raises(UsageError, match=r"model model-a.*model model-b") as err:
        head.check_embeddings({**SETTINGS, "fingerprint": "model-b"}, 8, "other")
    assert "\n" not in str(err.value)
    with pytest.raises(UsageError, match="window_seconds"):
        head.check_embeddings({**SETTINGS, "window_seconds": 1.0}, 8, "other")
    with pytest.raises(UsageError, match="8-d"):
        head.check_embeddings(SETTINGS, 16, "other")


def test_reading_a_damaged_head_names_the_file_and_field(tmp_path):
    root = toy_store(tmp_path / "emb", "multilabel")
    run_probe(root, tmp_path / "out")
    folder = tmp_path / "out" / "head"
    config = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**config, "thresholds": [0.5]}))
    with pytest.raises(ValueError, match=r"config\.json: field 'thresholds'"):
        read_head(folder)
    (folder / "config.json").write_text(json.dumps(config))
    (folder / "model.safetensors").write_bytes(b"\x80\x04not safetensors")  # a pickle's opening
    with pytest.raises(ValueError, match=r"model\.safetensors is not a readable safetensors"):
        read_head(folder)


def test_f1_thresholds_separate_the_positives_and_fall_back_without_any():
    probs = torch.tensor([[0.9, 0.2], [0.7, 0.1], [0.4, 0.3], [0.1, 0.05]])
    labels = torch.tensor([[1, 0], [1, 0], [0, 0], [0, 0]])
    thresholds, f1 = f1_thresholds(probs, labels)
    assert thresholds[0] == pytest.approx(0.55)  # midway between 0.7 (positive) and 0.4
    assert f1[0] == pytest.approx(1.0)
    assert thresholds[1] == 0.5
    assert f1[1] is None
