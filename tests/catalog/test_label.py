import csv

import numpy as np
import pyarrow.parquet as pq
import pytest
import torch

from lit_mrl.catalog.head import read_head
from lit_mrl.cli import main as cli_main
from lit_mrl.formats.embeddings import load_split
from lit_mrl.metrics import score_predictions


def label_main(*args):
    return cli_main(["label", *map(str, args)])


@pytest.mark.parametrize("task", ["multiclass", "multilabel", "regression"])
def test_labelling_the_test_split_reproduces_the_probe_test_metric(
    tmp_path, task, make_store, probe_run
):
    root = make_store(tmp_path / "emb", task, parts=2)
    results = probe_run(root, tmp_path / "probe")
    out = tmp_path / "labels"
    assert label_main("--embeddings", root, "--heads", tmp_path / "probe", "--out", out,
                      "--splits", "test", "--per_seed", "true") == 0  # fmt: skip
    table = pq.read_table(out / "labels.parquet")
    test = load_split(root, "test")
    assert table["key"].to_pylist() == test.keys
    head = read_head(tmp_path / "probe")
    labels = torch.from_numpy(test.labels.astype(np.int64 if task == "multiclass" else np.float32))
    if task == "regression":  # the search scores labels round-tripped through z-scores
        stats = head.config["standardize"]["targets"]
        mean, std = (torch.tensor(stats[k], dtype=torch.float32) for k in ("mean", "std"))
        labels = (labels - mean) / std * std + mean
    column = "toy.seed_values" if task == "regression" else "toy.seed_probs"
    seeds = torch.tensor(np.array(table[column].to_pylist(), dtype=np.float32))  # (N, E, K)
    per_seed = [score_predictions(task, seeds[:, e], labels, "default", head.vocabulary)[0]
                for e in range(seeds.shape[1])]  # fmt: skip
    assert per_seed == results["test_per_seed"]  # exactly the probe's numbers
    if task == "regression":
        ensemble = torch.tensor(np.stack([table[f"toy.out{i}"].to_numpy() for i in range(3)], 1))
    else:
        ensemble = torch.tensor(np.array(table["toy.probs"].to_pylist(), dtype=np.float32))
    scored = score_predictions(task, ensemble, labels, "default", head.vocabulary)[0]
    assert scored == head.config["test_ensemble"]


def test_label_writes_every_split_with_many_heads_and_a_csv(tmp_path, store_and_head, probe_run):
    root, probe, _ = store_and_head
    probe_run(root, tmp_path / "second", task_name="other")
    out = tmp_path / "labels"
    assert label_main("--embeddings", root, "--heads", f"[{probe}, {tmp_path / 'second'}]",
                      "--out", out, "--top_k", 2) == 0  # fmt: skip
    table = pq.read_table(out / "labels.parquet")
    assert table.num_rows == 240
    assert set(table["split"].to_pylist()) == {"train", "valid", "test"}
    head = read_head(probe)
    probs = np.array(table["toy.probs"].to_pylist())
    chosen = [set(tags) for tags in table["toy.tags"].to_pylist()]
    thresholds = np.array(head.config["thresholds"])
    assert chosen == [{f"out{k}" for k in np.flatnonzero(p >= thresholds)} for p in probs]
    top = table["toy.top_probs"].to_pylist()
    assert all(len(t) == 2 and t[0] >= t[1] for t in top)
    assert "other.top_tags" in table.column_names
    with open(out / "labels.csv") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 240
    assert "toy.probs" not in rows[0]  # per-tag arrays are Parquet only
    assert rows[0]["toy.top_tags"] == "|".join(table["toy.top_tags"][0].as_py())


def test_label_resumes_and_refuses_other_settings(tmp_path, store_and_head, capsys):
    root, probe, _ = store_and_head
    out = tmp_path / "labels"
    args = ["--embeddings", root, "--heads", probe, "--out", out]
    assert label_main(*args) == 0
    first = pq.read_table(out / "labels.parquet")
    parts = sorted((out / "parts").glob("*.parquet"))
    assert len(parts) == 6  # two per split
    parts[1].unlink()
    capsys.readouterr()
    assert label_main(*args) == 0
    assert "5 of this share already labelled, 1 to label" in capsys.readouterr().out
    assert pq.read_table(out / "labels.parquet").equals(first)
    assert label_main(*args, "--top_k", 3) == 2
    err = capsys.readouterr().err
    assert "labelled with other top_k" in err
    assert len(err.strip().splitlines()) == 1


def test_label_shared_by_two_ranks_writes_the_same_table(tmp_path, store_and_head, capsys):
    root, probe, _ = store_and_head
    assert label_main("--embeddings", root, "--heads", probe, "--out", tmp_path / "one") == 0
    two = ["--embeddings", root, "--heads", probe, "--out", tmp_path / "two", "--world", 2]
    assert label_main(*two, "--rank", 1) == 0
    assert "3 parts are left to other ranks" in capsys.readouterr().out
    assert not (tmp_path / "two" / "labels.parquet").exists()
    assert label_main(*two, "--rank", 0) == 0  # the last share done writes the table
    one = pq.read_table(tmp_path / "one" / "labels.parquet")
    assert one.equals(pq.read_table(tmp_path / "two" / "labels.parquet"))


@pytest.mark.slow  # spawns two processes that import torch (about 10 s on 2 busy cores)
def test_label_on_two_processes_writes_the_same_table(tmp_path, store_and_head):
    root, probe, _ = store_and_head
    assert label_main("--embeddings", root, "--heads", probe, "--out", tmp_path / "one") == 0
    assert label_main("--embeddings", root, "--heads", probe, "--out", tmp_path / "two",
                      "--processes", 2) == 0  # fmt: skip
    one = pq.read_table(tmp_path / "one" / "labels.parquet")
    assert one.equals(pq.read_table(tmp_path / "two" / "labels.parquet"))


def test_label_refuses_embeddings_of_another_model_in_one_line(
    tmp_path, store_and_head, make_store, capsys
):
    _, probe, _ = store_and_head
    other = make_store(tmp_path / "other", "multilabel",
                       settings={"fingerprint": "model-b", "window_seconds": 3.0,
                                 "hop_seconds": 3.0, "sample_rate": 16000})  # fmt: skip
    assert label_main("--embeddings", other, "--heads", probe, "--out", tmp_path / "l") == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert "model model-a" in err
    assert "model model-b" in err
