"""Files and W&B logs of one probe search: ``results.json``, ``grid.csv``, ``per_class.csv``.

``results.json`` is what ``python -m lit_mrl report`` reads. Undefined values (a tag
with no positive test example) are written as ``null`` in JSON and empty CSV cells.
"""

import csv
import json
import math
import os
from pathlib import Path
from typing import Any

RESULTS_NAME = "results.json"
FORMAT_VERSION = 1


def _finite(value: Any) -> Any:
    """NaN/inf floats as ``None``, recursively (strict JSON has no NaN)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_finite(v) for v in value]
    return value


def _cell(value: Any) -> Any:
    if isinstance(value, float):
        return "" if not math.isfinite(value) else f"{value:.6g}"
    if isinstance(value, list):
        return json.dumps(value)
    return value


def write_results(results: dict[str, Any], out: str | Path) -> Path:
    """Write ``results.json``, ``grid.csv`` (every config) and ``per_class.csv`` into ``out``.

    Args:
        results: the search summary (see :func:`lit_mrl.probe_search.main`), with
            ``configs``, ``selected``, ``class_names`` and ``per_class``.
        out: output folder (created).

    Returns:
        The path of ``results.json``.
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    path = out / RESULTS_NAME
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(_finite({"format_version": FORMAT_VERSION, **results}), indent=2))
    os.replace(tmp, path)
    _write_grid_csv(results, out / "grid.csv")
    _write_per_class_csv(results, out / "per_class.csv")
    return path


def _write_grid_csv(results: dict[str, Any], path: Path) -> None:
    configs = results["configs"]
    metrics = list(configs[0]["val"])
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(
            ["id", "hidden_dims", "dropout", "weight_decay", "lr"]
            + [f"val/{m}" for m in metrics]
            + ["selected"]
        )
        for c in configs:
            row = [c["id"], c["hidden_dims"], c["dropout"], c["weight_decay"], c["lr"]]
            row += [c["val"][m] for m in metrics] + [int(c["id"] == results["selected"])]
            writer.writerow([_cell(v) for v in row])


def _write_per_class_csv(results: dict[str, Any], path: Path) -> None:
    per_class = results["per_class"]
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["class", *per_class])
        for i, name in enumerate(results["class_names"]):
            writer.writerow([name, *(_cell(values[i]) for values in per_class.values())])


def read_results(path: str | Path) -> dict[str, Any]:
    """Read a ``results.json`` (or the one inside the folder ``path``)."""
    path = Path(path)
    if path.is_dir():
        path = path / RESULTS_NAME
    return json.loads(path.read_text())


def log_to_wandb(results: dict[str, Any], out: str | Path, project: str = "lit_mrl") -> None:
    """Log the grid, per-class and test metrics to W&B under ``probe/...``.

    Offline unless an account is configured (``WANDB_MODE`` is respected, so
    ``disabled`` logs nothing). Keys: ``probe/grid`` and ``probe/per_class`` tables,
    ``probe/val/<metric>`` and ``probe/test/<metric>`` of the selected config.
    """
    import wandb

    from lit_mrl.wandb_offline import default_to_offline

    default_to_offline()  # before wandb.init reads WANDB_MODE

    configs = results["configs"]
    metrics = list(configs[0]["val"])
    grid = wandb.Table(columns=["id", "hidden_dims", "dropout", "weight_decay", "lr", *metrics])
    for c in configs:
        grid.add_data(
            c["id"], str(c["hidden_dims"]), c["dropout"], c["weight_decay"], c["lr"],
            *(c["val"][m] for m in metrics),
        )  # fmt: skip
    per_class = wandb.Table(columns=["class", *results["per_class"]])
    for i, name in enumerate(results["class_names"]):
        per_class.add_data(name, *(v[i] for v in results["per_class"].values()))
    run = wandb.init(
        project=project,
        job_type="probe",
        name=f"probe-{results['task_name']}-{results['model_name']}",
        dir=str(out),
        config={k: v for k, v in results.items() if k not in ("configs", "per_class")},
    )
    scores = {f"probe/val/{k}": v for k, v in results["val"].items()}
    scores.update({f"probe/test/{k}": v for k, v in results["test"].items()})
    run.log({"probe/grid": grid, "probe/per_class": per_class, **scores})
    run.summary.update(scores)
    run.finish()
