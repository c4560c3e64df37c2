"""Run notebooks/*.ipynb on a tiny synthetic demo_out folder built here (no demo run needed)."""

import json
import math
from pathlib import Path

import nbformat
import numpy as np
import pytest
import soundfile as sf

from lit_mrl.formats.embeddings import append_part, write_index
from lit_mrl.probe.results import write_results
from lit_mrl.report.table import build_table, to_csv, to_markdown

NOTEBOOKS = Path(__file__).resolve().parents[2] / "notebooks"
TASKS = {
    "instrument": ("multiclass", ["brass", "guitar", "piano"]),
    "tags": ("multilabel", ["bass", "drums", "fast", "slow"]),
}
MODELS = {"logmel-stats": 1.0, "random": 2.0, "supervised": 0.3, "contrastive": 0.6}  # noise
SPLITS = {"train": 12, "valid": 6, "test": 6}
EMBED_DIM, SAMPLE_RATE = 8, 22050


def make_labels(rng, task, vocabulary, count):
    if task == "multiclass":
        return [np.int64(i % len(vocabulary)) for i in range(count)]
    return [(rng.random(len(vocabulary)) < 0.5).astype(np.float32) for _ in range(count)]


def write_embeddings(out, name, task, vocabulary, labels, rng):
    """Per model: class centres (or the sum of tag centres) plus model-dependent noise."""
    centres = rng.standard_normal((len(vocabulary), EMBED_DIM))
    for model, noise in MODELS.items():
        root = out / "embeddings" / model / name
        for split, rows_labels in labels.items():
            rows = []
            for i, label in enumerate(rows_labels):
                hot = np.eye(len(vocabulary))[label] if task == "multiclass" else label
                timeline = hot @ centres + noise * rng.standard_normal((2, EMBED_DIM))
                rows.append({
                    "key": f"{name}_{split}_{i:03d}", "embedding": timeline.mean(0),
                    "label": label, "timeline": timeline, "timestamps": np.array([0.5, 1.5]),
                })  # fmt: skip
            append_part(root, split, rows)
        write_index(root, {
            "embed_dim": EMBED_DIM, "task": task, "vocabulary": vocabulary,
            "encoder_class": "tests.TinyEncoder",
        })  # fmt: skip


def probe_result(name, task, vocabulary, model, score):
    """A results.json dict as `python -m lit_mrl probe` writes it (one config, two seeds)."""
    metrics = ["accuracy", "macro_accuracy"] if task == "multiclass" else ["roc_auc", "pr_auc"]
    test = dict.fromkeys(metrics, score)
    config = {"id": 0, "hidden_dims": [], "dropout": 0.0, "weight_decay": 0.0, "lr": 1e-3}
    config |= {"val": test, "best_step": 40}
    values = [score] * (len(vocabulary) - 1) + [math.nan]
    parts = {"mean": values, "low": [v - 0.05 for v in values], "high": [v + 0.05 for v in values]}
    per_class = {
        m: parts for m in (["accuracy"] if task == "multiclass" else ["roc_auc", "pr_auc"])
    }
    return {
        "task": task, "task_name": f"demo-{name}", "model_name": model, "metric": "default",
        "primary_metric": metrics[0], "num_samples": {"train": 12, "val": 6, "test": 6},
        "class_names": vocabulary, "selected_config": config, "configs": [config],
        "selected": 0, "val": test, "test": test,
        "test_low": {k: v - 0.05 for k, v in test.items()},
        "test_high": {k: v + 0.05 for k, v in test.items()},
        "test_per_seed": [test, test], "per_class": per_class,
    }  # fmt: skip


def write_audio(out, name, labels):
    """0.25 s sines at the demo sample rate and the manifest that points at them."""
    manifest = out / "data" / "manifests" / f"{name}.jsonl"
    (out / "data" / "audio" / name).mkdir(parents=True)
    manifest.parent.mkdir(parents=True)
    t = np.arange(SAMPLE_RATE // 4) / SAMPLE_RATE
    with open(manifest, "w") as f:
        for split, rows_labels in labels.items():
            for i, label in enumerate(rows_labels):
                key = f"{name}_{split}_{i:03d}"
                audio = 0.3 * np.sin(2 * np.pi * 220 * (1 + int(label)) * t)
                sf.write(out / "data" / "audio" / name / f"{key}.flac", audio, SAMPLE_RATE)
                line = {"path": f"../audio/{name}/{key}.flac", "split": split, "key": key}
                f.write(json.dumps(line | {"labels": [str(label)], "track_id": key}) + "\n")


def write_csv_logs(runs):
    """metrics.csv of each pre-training as Lightning's CSVLogger writes it, online probe included."""
    for method in ("supervised", "contrastive"):
        folder = runs / f"demo-{method}" / "version_0"
        folder.mkdir(parents=True)
        header = [
            "epoch",
            "step",
            "train/loss",
            "train/lr",
            "val/loss",
            "online_probe/pitch/accuracy",
        ]
        lines = [",".join(header)]
        for step in range(30):
            lines.append(f"{step // 10},{step},{2 / (step + 1)},{1e-3 * (30 - step) / 30},,")
            if step % 10 == 9:
                lines.append(f"{step // 10},{step},,,0.1,{0.3 + step / 100}")
        (folder / "metrics.csv").write_text("\n".join(lines) + "\n")


@pytest.fixture(scope="module")
def demo_out(tmp_path_factory):
    """A demo_out folder in the layout of `python -m lit_mrl demo`, a few kB of everything."""
    out = tmp_path_factory.mktemp("demo_out")
    rng = np.random.default_rng(0)
    results = []
    for name, (task, vocabulary) in TASKS.items():
        labels = {s: make_labels(rng, task, vocabulary, n) for s, n in SPLITS.items()}
        write_embeddings(out, name, task, vocabulary, labels, rng)
        for score, model in enumerate(MODELS):
            result = probe_result(name, task, vocabulary, model, 0.4 + 0.15 * score)
            write_results(result, out / "results" / model / name)
            results.append(result)
        if task == "multiclass":
            write_audio(out, name, labels)
    table = build_table(results)
    (out / "report.csv").write_text(to_csv(table))
    (out / "report.md").write_text(to_markdown(table, []))
    write_csv_logs(out / "runs")
    return out


@pytest.fixture(scope="module")
def kernel_name(tmp_path_factory):
    """A kernel spec that runs this interpreter, found before any user-installed `python3`."""
    from ipykernel.kernelspec import write_kernel_spec

    jupyter_path = tmp_path_factory.mktemp("jupyter")
    write_kernel_spec(jupyter_path / "kernels" / "lit-mrl-test")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("JUPYTER_PATH", str(jupyter_path))
        yield "lit-mrl-test"


def test_notebooks_are_committed_without_outputs():
    paths = sorted(NOTEBOOKS.glob("*.ipynb"))
    assert [p.name for p in paths] == ["01_results.ipynb", "02_embeddings.ipynb"]
    for path in paths:
        for cell in nbformat.read(path, as_version=4).cells:
            if cell.cell_type == "code":
                assert cell.outputs == [], f"{path.name} has outputs: strip them (nbstripout)"
                assert cell.execution_count is None


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        # both CSV logs found, the interval columns read back
        ("01_results.ipynb", ["'demo-contrastive': 4", "70.0 [65.0, 75.0]"]),
        ("02_embeddings.ipynb", ["agreement@5", "<audio"]),  # players: the audio was found
    ],
)
def test_notebook_runs_on_demo_outputs(name, expected, demo_out, kernel_name, monkeypatch):
    from nbclient import NotebookClient

    monkeypatch.setenv("LIT_MRL_DEMO_OUT", str(demo_out))
    nb = nbformat.read(NOTEBOOKS / name, as_version=4)  # executed in memory, never written back
    client = NotebookClient(
        nb, kernel_name=kernel_name, timeout=120, resources={"metadata": {"path": str(NOTEBOOKS)}}
    )
    client.execute()  # raises CellExecutionError with the failing cell's traceback
    outputs = json.dumps([cell.get("outputs", []) for cell in nb.cells])
    assert "image/png" in outputs
    for text in expected:
        assert text in outputs
    assert "skipped" not in outputs
    assert "unfinished" not in outputs
