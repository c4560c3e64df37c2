import json

import numpy as np
import pytest
import torch

from lit_mrl.catalog.head import read_head
from lit_mrl.catalog.thresholds import f1_thresholds
from lit_mrl.errors import UsageError
from lit_mrl.formats.embeddings import load_split
from lit_mrl.metrics import score_predictions


@pytest.mark.parametrize("task", ["multiclass", "multilabel", "regression"])
def test_saved_head_reproduces_the_probe_test_metric(tmp_path, task, make_store, probe_run):
    root = make_store(tmp_path / "emb", task)
    results = probe_run(root, tmp_path / "out")
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


def test_head_refuses_embeddings_of_another_model(tmp_path, make_store, probe_run):
    root = make_store(tmp_path / "emb", "multiclass")
    probe_run(root, tmp_path / "out")
    head = read_head(tmp_path / "out" / "head")
    settings = json.loads((root / "index.json").read_text())
    head.check_embeddings(settings, 8, "emb")  # its own model: fine
    with pytest.raises(UsageError, match=r"model model-a.*model model-b") as err:
        head.check_embeddings({**settings, "fingerprint": "model-b"}, 8, "other")
    assert "\n" not in str(err.value)
    with pytest.raises(UsageError, match="window_seconds"):
        head.check_embeddings({**settings, "window_seconds": 1.0}, 8, "other")
    with pytest.raises(UsageError, match="8-d"):
        head.check_embeddings(settings, 16, "other")


def test_reading_a_damaged_head_names_the_file_and_field(tmp_path, make_store, probe_run):
    root = make_store(tmp_path / "emb", "multilabel")
    probe_run(root, tmp_path / "out")
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
