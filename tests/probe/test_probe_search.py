import csv
import json
import math
from pathlib import Path

import lightning as L
import numpy as np
import pytest
import torch

from lit_mrl.cli import main as cli_main
from lit_mrl.data.embedding_datamodule import EmbeddingDataModule, write_arrays
from lit_mrl.errors import UsageError
from lit_mrl.formats.embeddings import write_index
from lit_mrl.metrics import score_predictions
from lit_mrl.probe.data import ProbeData
from lit_mrl.probe.grid import GRIDS, Grid, load_grid
from lit_mrl.probe.module import ProbeModule
from lit_mrl.probe.search import Budget, run_search, select_best
from lit_mrl.tasks import ranking_metrics


def fixed(steps, warmup, batch_size=32):
    """A budget without early stopping: every probe trains exactly ``steps`` steps."""
    return Budget(steps, warmup, batch_size, eval_every=steps, patience=0)


def quiet(*_):
    pass


def probe_main(args):
    """``python -m lit_mrl probe ARGS``; returns (exit code, results.json)."""
    code = cli_main(["probe", *map(str, args), "--wandb", "false", "--bootstrap", "200"])
    out = args[args.index("--out") + 1]
    return code, json.loads((Path(out) / "results.json").read_text()) if code == 0 else None


KEYS = sorted(
    f"{t} {m}"
    for t in ["C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B"]
    for m in ("major", "minor")
)


def noisy_embeddings(root, task, dim=16, num_outputs=4, sizes=(200, 100, 100), noise=2.0, seed=0):
    """Overlapping Gaussian clusters, so configs differ in (continuous) validation metrics."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((num_outputs, dim))
    projection = rng.standard_normal((dim, num_outputs)) / np.sqrt(dim)
    for split, size in zip(("train", "valid", "test"), sizes, strict=True):
        classes = rng.integers(0, num_outputs, size)
        emb = centres[classes] + noise * rng.standard_normal((size, dim))
        labels = {
            "multiclass": classes,
            "multilabel": (
                np.eye(num_outputs)[classes] + (rng.random((size, num_outputs)) < 0.1)
            ).clip(0, 1),
            "regression": emb @ projection + 0.3 * rng.standard_normal((size, num_outputs)),
        }[task]
        write_arrays(root, split, emb, labels)
    names = KEYS if num_outputs == 24 else [f"out{i}" for i in range(num_outputs)]
    write_index(root, {"embed_dim": dim, "task": task, "vocabulary": names, "input": "/data/toy"})
    return root


def one_by_one(root, grid, steps, warmup, seed, batch_size=32):
    """Each config as its own ProbeModule through Lightning: (val preds, val metrics) per config."""
    data = EmbeddingDataModule(str(root), batch_size=batch_size, seed=seed)
    valid = data.load("val")
    results = []
    for config in grid.configs():
        probe = ProbeModule(
            data.task, len(data.vocabulary), in_dim=data.embed_dim, hidden_dims=list(config.hidden_dims),
            dropout=config.dropout, weight_decay=config.weight_decay, lr=config.lr,
            warmup_steps=warmup, max_steps=steps, init_seed=seed,
        )  # fmt: skip
        single = EmbeddingDataModule(str(root), batch_size=batch_size, seed=seed)
        L.Trainer(
            accelerator="cpu", max_steps=steps, logger=False, enable_checkpointing=False,
            enable_progress_bar=False, enable_model_summary=False, limit_val_batches=0,
        ).fit(probe, single)  # fmt: skip
        with torch.no_grad():
            preds = probe.eval().head(valid.embeddings)
        results.append((preds, score_predictions(data.task, preds, valid.labels)[0]))
    return results


def test_grids_have_the_documented_sizes():
    paper = GRIDS["paper"].configs()
    assert len(paper) == 4 * 3 + 5 * 4 * 4 * 3 == 252
    assert len(GRIDS["small"].configs()) == 32
    assert len(GRIDS["demo"].configs()) == 8
    linear = [c for c in paper if not c.hidden_dims]
    assert {c.dropout for c in linear} == {0.0}
    assert len(set(paper)) == len(paper)


def test_grid_from_a_yaml_file(tmp_path):
    path = tmp_path / "grid.yaml"
    path.write_text(
        "hidden_dims: [[], [64, 64]]\ndropout: [0.5]\nweight_decay: [0]\nlr: [1e-3, 1e-2]\n"
    )
    grid = load_grid(str(path))
    assert grid.hidden_dims == ((), (64, 64))
    assert len(grid.configs()) == 4
    path.write_text("hidden_dims: [[]]\n")
    with pytest.raises(UsageError, match="exactly the lists"):
        load_grid(str(path))


def test_ensemble_matches_one_by_one_training_without_dropout(tmp_path):
    """Same init, data order and optimiser per member: predictions agree to float rounding."""
    root = noisy_embeddings(tmp_path, "multilabel")
    grid = Grid(hidden_dims=((), (8,)), dropout=(0.0,), weight_decay=(0.0, 1e-3), lr=(1e-3, 1e-2))
    steps, warmup, seed = 30, 5, 7
    search = run_search(
        ProbeData.from_folder(root), grid, fixed(steps, warmup), seeds=[seed], progress=quiet
    )
    reference = one_by_one(root, grid, steps, warmup, seed)
    for config, (_, expected) in zip(search["configs"], reference, strict=True):
        for name, value in expected.items():
            assert config["val"][name] == pytest.approx(value, abs=1e-5), (config, name)
    rank = ("roc_auc", "pr_auc")
    assert search["selected"] == select_best([r[1] for r in reference], rank)


def test_ensemble_predictions_equal_the_probe_module(tmp_path):
    from lit_mrl.models.heads import seeded_mlp_head
    from lit_mrl.probe.ensemble import StackedMLP
    from lit_mrl.probe.training import fit_members

    root = noisy_embeddings(tmp_path, "regression")
    data = ProbeData.from_folder(root)
    grid = Grid(hidden_dims=((8, 8),), dropout=(0.0,), weight_decay=(0.0, 1e-3), lr=(3e-3,))
    reference = one_by_one(root, grid, 25, 3, seed=1)
    model = StackedMLP([seeded_mlp_head(16, 4, [8, 8], 0.0, 1)] * 2, torch.zeros(2))
    runs = fit_members(
        model, data.split("train"), "regression", lr=torch.tensor([3e-3, 3e-3], dtype=torch.float64),
        weight_decay=torch.tensor([0.0, 1e-3]), seeds=[1, 1], steps=25, warmup_steps=3, batch_size=32,
    )  # fmt: skip
    assert [run.steps for run in runs] == [25, 25]
    preds = StackedMLP.from_weights([run.weights for run in runs]).predict(
        data.split("val").embeddings
    )
    for e, (expected, _) in enumerate(reference):
        torch.testing.assert_close(preds[e], expected, atol=1e-5, rtol=1e-5)


def test_ensemble_selection_matches_one_by_one_with_dropout(tmp_path):
    """Dropout masks differ, but on a clear problem the same config wins."""
    root = noisy_embeddings(tmp_path, "regression", noise=1.0)
    grid = Grid(hidden_dims=((32,),), dropout=(0.1, 0.9), weight_decay=(0.0,), lr=(1e-4, 1e-2))
    search = run_search(ProbeData.from_folder(root), grid, fixed(60, 5), seeds=[0], progress=quiet)
    reference = one_by_one(root, grid, 60, 5, seed=0)
    best = select_best([r[1] for r in reference], ("r2",))
    assert search["selected"] == best
    assert grid.configs()[best].lr == 1e-2
    assert grid.configs()[best].dropout == 0.1
    assert search["val"]["r2"] == pytest.approx(reference[best][1]["r2"], abs=0.05)


def test_chunked_ensembles_equal_one_ensemble(tmp_path):
    data = ProbeData.from_folder(noisy_embeddings(tmp_path, "multiclass"))
    grid = Grid(hidden_dims=((16,),), dropout=(0.0,), weight_decay=(0.0, 1e-4), lr=(1e-3, 1e-2))
    budget = fixed(20, 2, batch_size=50)
    whole = run_search(data, grid, budget, seeds=[0], progress=quiet)
    one_each = run_search(data, grid, budget, seeds=[0], max_params=1, progress=quiet)
    assert whole["selected"] == one_each["selected"]
    for a, b in zip(whole["configs"], one_each["configs"], strict=True):
        assert a["val"] == pytest.approx(b["val"], abs=1e-6)


def test_select_best_breaks_ties_by_the_next_metric_then_grid_order():
    val = [
        {"roc_auc": 0.9, "pr_auc": 0.3},
        {"roc_auc": 0.9, "pr_auc": 0.4},
        {"roc_auc": math.nan, "pr_auc": 0.9},
        {"roc_auc": 0.9, "pr_auc": 0.4},
    ]
    assert select_best(val, ("roc_auc", "pr_auc")) == 1


def test_early_stopping_keeps_each_members_best_validation_weights(tmp_path):
    data = ProbeData.from_folder(noisy_embeddings(tmp_path, "multiclass"))
    grid = Grid(hidden_dims=((64,),), dropout=(0.0,), weight_decay=(0.0,), lr=(1e-1, 1e-3))
    budget = Budget(400, 10, 32, eval_every=10, patience=5)
    search = run_search(data, grid, budget, seeds=[0], progress=quiet)
    steps = [c["best_step"] for c in search["configs"]]
    assert all(10 <= step <= 400 for step in steps)
    late = run_search(data, grid, fixed(400, 10), seeds=[0], progress=quiet)
    for early, last in zip(search["configs"], late["configs"], strict=True):
        assert early["val"]["accuracy"] >= last["val"]["accuracy"] - 1e-9  # best, not last


def test_probe_command_writes_results_with_intervals(tmp_path, capsys):
    root = noisy_embeddings(tmp_path / "emb", "multiclass", num_outputs=5)
    out = tmp_path / "out"
    code, saved = probe_main([
        "--embeddings", root, "--grid", "small", "--epochs", 2, "--min_steps", 10,
        "--batch_size", 64, "--seeds", 2, "--out", out, "--model_name", "toy",
    ])  # fmt: skip
    assert code == 0
    printed = capsys.readouterr().out
    assert "test/accuracy:" in printed
    assert "95 % interval" in printed
    assert saved["task"] == "multiclass"
    assert saved["task_name"] == "toy"  # the name of index.json's input folder
    assert saved["model_name"] == "toy"
    assert saved["num_configs"] == len(saved["configs"]) == 32
    assert saved["budget"]["steps"] == max(2 * math.ceil(200 / 64), 10)
    assert saved["seeds"] == [0, 1]
    assert len(saved["test_per_seed"]) == 2
    assert saved["selected_config"]["id"] == saved["selected"]
    assert set(saved["test"]) == {"accuracy", "macro_accuracy"}
    for name, value in saved["test"].items():
        assert saved["test_low"][name] <= value <= saved["test_high"][name]
    with open(out / "grid.csv") as f:
        grid_rows = list(csv.DictReader(f))
    assert len(grid_rows) == 32
    assert sum(int(r["selected"]) for r in grid_rows) == 1
    with open(out / "per_class.csv") as f:
        per_class = list(csv.DictReader(f))
    assert [r["class"] for r in per_class] == [f"out{i}" for i in range(5)]
    assert set(per_class[0]) == {"class", "accuracy_mean", "accuracy_low", "accuracy_high"}


def test_probe_command_records_its_precision_and_refuses_an_unknown_one(tmp_path, capsys):
    root = noisy_embeddings(tmp_path / "emb", "multiclass", num_outputs=5)
    args = ["--embeddings", root, "--grid", "demo", "--steps", 20, "--seeds", 1]
    code, saved = probe_main([*args, "--out", tmp_path / "a", "--precision", "bf16-mixed"])
    assert code == 0
    assert saved["precision"] == "bf16-mixed"
    assert "precision bf16-mixed" in capsys.readouterr().out
    code, saved = probe_main([*args, "--out", tmp_path / "b"])
    assert code == 0
    assert saved["precision"] == "32"
    with pytest.raises(SystemExit) as exit_info:
        cli_main(["probe", *map(str, args), "--out", str(tmp_path / "c"), "--precision", "16"])
    assert exit_info.value.code == 2
    assert "precision" in capsys.readouterr().err


def test_regression_targets_are_standardised_and_scored_in_their_units(tmp_path):
    """Targets in the hundreds (BPM-like): R² stays sane because the probe sees z-scores."""
    rng = np.random.default_rng(0)
    centre = rng.standard_normal((1, 8))
    for split, size in (("train", 300), ("valid", 100), ("test", 100)):
        emb = rng.standard_normal((size, 8)) + centre
        bpm = 120 + 30 * emb[:, :1] + 3 * rng.standard_normal((size, 1))
        write_arrays(tmp_path / "emb", split, emb, bpm)
    write_index(tmp_path / "emb", {"embed_dim": 8, "task": "regression", "vocabulary": ["bpm"]})
    code, saved = probe_main(
        ["--embeddings", tmp_path / "emb", "--grid", "small", "--seeds", 1, "--min_steps", 500,
         "--out", tmp_path / "o"]
    )  # fmt: skip
    assert code == 0
    assert saved["targets_standardized"]
    assert saved["test"]["r2_bpm"] > 0.8
    assert saved["test_low"]["r2_bpm"] <= saved["test"]["r2_bpm"] <= saved["test_high"]["r2_bpm"]


def test_probe_command_reads_a_probe_config_and_scores_keys(tmp_path):
    root = noisy_embeddings(tmp_path / "emb", "multiclass", num_outputs=24, noise=0.5)
    config = tmp_path / "probe.yaml"
    config.write_text(
        "seed_everything: 3\ntrainer:\n  max_steps: 9\n"
        "model:\n  class_path: lit_mrl.probe.ProbeModule\n  init_args:\n    task: multiclass\n"
        "    num_outputs: 24\n    metric: mirex_key\n    warmup_steps: 2\n    max_steps: 9\n"
        "    hidden_dims: [16]\n    lr: 0.005\n"
        f"data:\n  class_path: lit_mrl.data.EmbeddingDataModule\n  init_args:\n"
        f"    root: {root}\n    batch_size: 100\n"
    )
    grid = tmp_path / "grid.yaml"
    grid.write_text("hidden_dims: [[]]\ndropout: [0.5]\nweight_decay: [0]\nlr: [1e-3, 3e-2]\n")
    code, results = probe_main(
        ["--config", config, "--grid", grid, "--out", tmp_path / "o", "--seeds", 1]
    )
    assert code == 0
    budget = results["budget"]
    assert (budget["steps"], budget["warmup_steps"], budget["batch_size"]) == (9, 2, 100)
    assert results["primary_metric"] == "mirex_key"
    assert results["test"]["mirex_key"] >= results["test"]["accuracy"]
    assert results["grid"]["name"] == "grid"
    assert results["seeds"] == [3]  # seed_everything
    assert results["num_configs"] == 3  # the grid's two plus the config's own probe
    assert results["configs"][-1]["hidden_dims"] == [16]


@pytest.mark.parametrize(
    ("yaml_text", "message"),
    [
        ("model:\n  init_args:\n    task: multilabel\n", "task='multilabel' but"),
        ("model:\n  init_args:\n    max_stpes: 10\n", "max_stpes (did you mean 'max_steps'?)"),
        ("data:\n  init_args:\n    bach_size: 10\n", "bach_size (did you mean 'batch_size'?)"),
        ("trainer:\n  callbacks: []\n", "trainer.callbacks is not used by the probe search"),
        ("model:\n  init_args:\n    checkpoint: a.ckpt\n", "probes a live encoder"),
    ],
)
def test_probe_config_keys_are_honoured_or_refused(tmp_path, capsys, yaml_text, message):
    root = noisy_embeddings(tmp_path / "emb", "regression")
    config = tmp_path / "probe.yaml"
    config.write_text(yaml_text)
    code, _ = probe_main(["--config", config, "--embeddings", root, "--out", tmp_path / "o"])
    assert code == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert message in line


def test_a_missing_split_or_a_single_class_is_refused_before_training(tmp_path, capsys):
    root = tmp_path / "emb"
    rng = np.random.default_rng(0)
    write_arrays(root, "train", rng.standard_normal((20, 4)), np.zeros(20, dtype=np.int64))
    write_arrays(root, "valid", rng.standard_normal((5, 4)), np.zeros(5, dtype=np.int64))
    write_index(root, {"embed_dim": 4, "task": "multiclass", "vocabulary": ["a", "b"]})
    code, _ = probe_main(["--embeddings", root, "--out", tmp_path / "o"])
    assert code == 2
    assert "no embeddings of split 'test'" in capsys.readouterr().err
    write_arrays(root, "test", rng.standard_normal((5, 4)), np.zeros(5, dtype=np.int64))
    code, _ = probe_main(["--embeddings", root, "--out", tmp_path / "o"])
    assert code == 2
    assert "every training item has the class 'a'" in capsys.readouterr().err


def test_probe_help_through_python_m_lit_mrl(capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli_main(["probe", "--help"])
    assert exit_info.value.code == 0
    assert "--embeddings" in capsys.readouterr().out


# What the search gave before the probe search moved onto ProbeData and each member began
# training as if alone (recorded with the code of commit 4f2f8da): the selected config,
# every config's primary validation metric and best step, and the test numbers of the
# selected config (2 seeds, 100 replicates). Configs without dropout train exactly as they
# did; dropout now draws each seed's masks as that seed's probe trained alone draws them
# (before, the members of an ensemble took slices of one draw), a new draw of the noise.
PROTOCOL_GRIDS = {
    "full": Grid(hidden_dims=((), (32,)), dropout=(0.25, 0.5), weight_decay=(0.0, 1e-3), lr=(3e-3, 3e-2)),
    "mlp": Grid(hidden_dims=((32,),), dropout=(0.25, 0.5), weight_decay=(0.0,), lr=(3e-3, 3e-2)),
}  # fmt: skip
RECORDED = {
    ("regression", "full"): {
        "selected": 3,
        "val": [0.116786, 0.976105, 0.118105, 0.976293, 0.778491, 0.947151, 0.773147, 0.942178, 0.634295, 0.894198, 0.629728, 0.893997],
        "best_step": [200, 150, 200, 150, 200, 150, 200, 190, 200, 170, 200, 200],
        "test": {"r2": 0.972729, "r2_out0": 0.963752, "r2_out1": 0.969772, "r2_out2": 0.969336, "r2_out3": 0.988054},
        "test_low": {"r2": 0.965055, "r2_out0": 0.949509, "r2_out1": 0.953598, "r2_out2": 0.953644, "r2_out3": 0.983562},
        "test_high": {"r2": 0.977418, "r2_out0": 0.971665, "r2_out1": 0.980703, "r2_out2": 0.979493, "r2_out3": 0.991306},
        "test_per_seed": [{"r2": 0.973013, "r2_out0": 0.964534, "r2_out1": 0.969897, "r2_out2": 0.969591, "r2_out3": 0.98803}, {"r2": 0.972444, "r2_out0": 0.96297, "r2_out1": 0.969647, "r2_out2": 0.969082, "r2_out3": 0.988077}],
    },
    ("multiclass", "full"): {
        "selected": 3,
        "val": [0.56, 0.76, 0.56, 0.77, 0.72, 0.74, 0.71, 0.74, 0.69, 0.73, 0.69, 0.73],
        "best_step": [150, 40, 160, 30, 170, 60, 100, 60, 110, 60, 170, 50],
        "test": {"accuracy": 0.78, "macro_accuracy": 0.762918},
        "test_low": {"accuracy": 0.706875, "macro_accuracy": 0.676877},
        "test_high": {"accuracy": 0.862625, "macro_accuracy": 0.850378},
        "test_per_seed": [{"accuracy": 0.79, "macro_accuracy": 0.781606}, {"accuracy": 0.77, "macro_accuracy": 0.744229}],
    },
    ("multilabel", "mlp"): {
        "selected": 3,  # hidden [32], dropout 0.5, lr 3e-2
        "val": [0.776844, 0.802049, 0.771251, 0.80701],
        "best_step": [200, 20, 170, 30],
        "test": {"roc_auc": 0.847184, "pr_auc": 0.783241},
        "test_low": {"roc_auc": 0.806444, "pr_auc": 0.731227},
        "test_high": {"roc_auc": 0.891938, "pr_auc": 0.845213},
        "test_per_seed": [{"roc_auc": 0.847468, "pr_auc": 0.788099}, {"roc_auc": 0.846901, "pr_auc": 0.778382}],
    },
}  # fmt: skip


def protocol_search(tmp_path, task, grid):
    data = ProbeData.from_folder(noisy_embeddings(tmp_path, task, sizes=(120, 100, 100)))
    budget = Budget(200, 10, 32, eval_every=10, patience=4)
    return run_search(data, PROTOCOL_GRIDS[grid], budget, [0, 1], replicates=100, progress=quiet)


@pytest.mark.parametrize(("task", "grid"), list(RECORDED))
def test_the_search_protocol_gives_the_recorded_numbers(tmp_path, task, grid):
    """Configs without dropout: the recorded runs; a selection without dropout: its numbers."""
    recorded, search = RECORDED[task, grid], protocol_search(tmp_path, task, grid)
    primary = ranking_metrics(task, "default")[0]
    configs = PROTOCOL_GRIDS[grid].configs()
    for i, config in enumerate(configs):
        if config.dropout == 0:
            assert search["configs"][i]["val"][primary] == pytest.approx(
                recorded["val"][i], abs=1e-5
            )
            assert search["configs"][i]["best_step"] == recorded["best_step"][i]
    if configs[recorded["selected"]].dropout == 0:
        assert search["selected"] == recorded["selected"]
        for key in ("test", "test_low", "test_high"):
            assert search[key] == pytest.approx(recorded[key], abs=1e-5), key
        for seed, expected in zip(search["test_per_seed"], recorded["test_per_seed"], strict=True):
            assert seed == pytest.approx(expected, abs=1e-5)
    else:  # a new draw of the dropout noise: within the recorded 95 % interval
        low, high = recorded["test_low"][primary], recorded["test_high"][primary]
        assert low <= search["test"][primary] <= high


def test_probe_data_standardises_with_training_statistics_and_maps_targets_back(tmp_path):
    data = ProbeData.from_folder(noisy_embeddings(tmp_path, "regression"))
    train = data.split("train")
    assert train.embeddings.mean(0).abs().max() < 1e-5
    assert (train.embeddings.std(0) - 1).abs().max() < 1e-4
    assert train.labels.mean(0).abs().max() < 1e-5  # regression targets too
    raw = np.load(sorted(tmp_path.glob("test-*.npz"))[0])["labels"]
    torch.testing.assert_close(data.original_labels("test"), torch.from_numpy(raw).float())
    plain = ProbeData.from_folder(tmp_path, standardize=False, standardize_targets=False)
    torch.testing.assert_close(plain.original_labels("test"), data.original_labels("test"))
    with pytest.raises(UsageError, match="no embeddings of split 'dev' \\(the val split\\)"):
        ProbeData.from_folder(tmp_path, val_split="dev").split("val")


def _bf16(tensor):
    """``tensor`` rounded to bfloat16, in float64 (the reference's products are exact)."""
    return tensor.to(torch.bfloat16).double()


def test_bf16_products_are_bfloat16_products_with_float32_state():
    """One training pass of a [16]-hidden ensemble against a float64 reference that rounds
    each product's operands and result to bfloat16 (as autocast's products are), and keeps
    biases, ReLU masks, loss gradients and sums over the batch in float32."""
    from lit_mrl.models.heads import seeded_mlp_head
    from lit_mrl.probe.ensemble import StackedMLP, loss_gradient

    generator = torch.Generator().manual_seed(0)
    heads = [seeded_mlp_head(24, 5, [16], 0.0, s) for s in range(3)]
    emb = torch.randn(40, 24, generator=generator)
    labels = torch.randint(0, 5, (40,), generator=generator)
    model = StackedMLP(heads, torch.zeros(3), compute_dtype=torch.bfloat16)
    plain = StackedMLP(heads, torch.zeros(3))
    out = model.forward(emb, [torch.rand(1, 40, 16, generator=generator)])
    model.backward(emb, out, loss_gradient("multiclass", out[-1].clone(), labels))
    assert model.flat.dtype == torch.float32
    assert model.grad.dtype == torch.float32
    assert out[-1].dtype == torch.float32

    def product(a, b):  # bfloat16 operands, exact sums, a bfloat16 result
        return _bf16(_bf16(a) @ _bf16(b)).float()

    (k0, k1), (b0, b1) = plain.kernels, plain.biases
    x = emb.expand(3, -1, -1)
    hidden = (b0 + product(x, k0)).relu()
    logits = b1 + product(hidden, k1)
    grad_out = loss_gradient("multiclass", logits.clone(), labels)
    grad_hidden = product(grad_out, k1.transpose(1, 2)) * (hidden > 0)
    expected = {
        "output": (out[-1], logits),
        "kernel 1": (model.kernel_grads[1], product(hidden.transpose(1, 2), grad_out)),
        "kernel 0": (model.kernel_grads[0], product(x.transpose(1, 2), grad_hidden)),
        "bias 1": (model.bias_grads[1], grad_out.sum(1, keepdim=True)),
        "bias 0": (model.bias_grads[0], grad_hidden.sum(1, keepdim=True)),
    }
    for name, (got, want) in expected.items():
        # float32 vs exact sums may round to neighbouring bfloat16 values (1 ulp: 2**-8)
        torch.testing.assert_close(got, want, rtol=2**-7, atol=1e-6, msg=name)
        assert (got == want).float().mean() > 0.9, name
    plain_out = plain.forward(emb, [torch.zeros(1, 40, 16)])
    plain.backward(emb, plain_out, loss_gradient("multiclass", plain_out[-1].clone(), labels))
    assert (plain.grad == model.grad).float().mean() < 0.5  # the products did run in bfloat16
    torch.testing.assert_close(model.predict(emb), plain.predict(emb))  # evaluation: float32
    with pytest.raises(ValueError, match="compute_dtype"):
        StackedMLP(heads, torch.zeros(3), compute_dtype=torch.float16)


@pytest.mark.parametrize(("task", "grid"), list(RECORDED))
def test_bf16_mixed_search_stays_within_seed_noise_of_the_recorded_protocol(tmp_path, task, grid):
    """bfloat16 products move validation scores less than another seed does; test in the interval."""
    recorded, primary = RECORDED[task, grid], ranking_metrics(task, "default")[0]
    budget = Budget(200, 10, 32, eval_every=10, patience=4)

    def deviation(folder, seeds, precision):
        data = ProbeData.from_folder(
            noisy_embeddings(tmp_path / folder, task, sizes=(120, 100, 100))
        )
        search = run_search(data, PROTOCOL_GRIDS[grid], budget, seeds, replicates=100,
                            progress=quiet, precision=precision)  # fmt: skip
        val = [c["val"][primary] for c in search["configs"]]
        return max(abs(a - b) for a, b in zip(val, recorded["val"], strict=True)), search

    seed_noise, _ = deviation("seed", [1, 2], "32")
    rounding, search = deviation("bf16", [0, 1], "bf16-mixed")
    assert 0 < rounding <= seed_noise
    assert (
        search["configs"][search["selected"]]["val"][primary] >= max(recorded["val"]) - seed_noise
    )
    low, high = recorded["test_low"][primary], recorded["test_high"][primary]
    assert low <= search["test"][primary] <= high


@pytest.mark.parametrize("task", ["multiclass", "multilabel", "regression"])
def test_the_small_data_budget_stays_within_seed_noise_of_the_fixed_one(tmp_path, task):
    """200 training items: the default budget (batch 32, 1000 steps) against the one it
    replaced (batch 256, at least 2000 steps): the selected probe scores on validation no
    worse than a change of seed allows, and its test score is in the old interval."""
    data = ProbeData.from_folder(noisy_embeddings(tmp_path, task, sizes=(200, 100, 100)))
    primary = ranking_metrics(task, "default")[0]
    new = Budget.for_data(len(data.split("train")))
    assert (new.batch_size, new.steps) == (32, 1000)
    old = Budget.for_data(len(data.split("train")), 256, min_steps=2000)

    def search(budget, seed):
        return run_search(data, PROTOCOL_GRIDS["full"], budget, [seed], replicates=100,
                          progress=quiet)  # fmt: skip

    before, other_seed, after = search(old, 0), search(old, 2), search(new, 0)
    seed_noise = abs(before["val"][primary] - other_seed["val"][primary])
    assert after["val"][primary] >= before["val"][primary] - seed_noise - 1e-3
    assert before["test_low"][primary] <= after["test"][primary] <= before["test_high"][primary]
