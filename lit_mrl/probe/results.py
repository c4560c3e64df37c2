"""Files and W&B logs of one probe search: ``results.json``, ``grid.csv``, ``per_class.csv``.

``results.json`` is what ``python -m lit_mrl report`` reads: test metrics as the mean
over seeds (``test``) with a 95 % bootstrap interval (``test_low``, ``test_high``).
``per_class.csv`` has, per class, each metric's mean and interval. Undefined values (a
tag with no positive test example) are ``null`` in JSON and empty CSV cells.
"""

import csv
import io
import json
import math
from pathlib import Path
from typing import Any

from lit_mrl.formats.files import atomic_write

RESULTS_NAME = "results.json"
FORMAT_VERSION = 2  # 2: test intervals, early stopping, per-class intervals


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
        results: the search summary (see :func:`lit_mrl.probe.search.summarise`), with
            ``configs``, ``selected``, ``class_names`` and ``per_class``.
        out: output folder (created).

    Returns:
        The path of ``results.json``.
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    _write_grid_csv(results, out / "grid.csv")
    _write_per_class_csv(results, out / "per_class.csv")
    path = out / RESULTS_NAME  # last: its presence marks a finished search
    payload = json.dumps(_finite({"format_version": FORMAT_VERSION, **results}), indent=2)
    atomic_write(path, payload.encode())
    return path


def _csv_bytes(rows: list[list[Any]]) -> bytes:
    buffer = io.StringIO()
    csv.writer(buffer).writerows([[_cell(v) for v in row] for row in rows])
    return buffer.getvalue().encode()


def _write_grid_csv(results: dict[str, Any], path: Path) -> None:
    configs = results["configs"]
    metrics = list(configs[0]["val"])
    rows = [
        ["id", "hidden_dims", "dropout", "weight_decay", "lr", "best_step"]
        + [f"val/{m}" for m in metrics]
        + ["selected"]
    ]
    for c in configs:
        row = [c["id"], c["hidden_dims"], c["dropout"], c["weight_decay"], c["lr"], c["best_step"]]
        rows.append(row + [c["val"][m] for m in metrics] + [int(c["id"] == results["selected"])])
    atomic_write(path, _csv_bytes(rows))


def _write_per_class_csv(results: dict[str, Any], path: Path) -> None:
    per_class = results["per_class"]  # {metric: {"mean", "low", "high"}: per-class lists}
    header = ["class"] + [f"{m}_{part}" for m in per_class for part in ("mean", "low", "high")]
    rows = [header]
    for i, name in enumerate(results["class_names"]):
        values = [per_class[m][part][i] for m in per_class for part in ("mean", "low", "high")]
        rows.append([name, *values])
    atomic_write(path, _csv_bytes(rows))


def read_results(path: str | Path) -> dict[str, Any]:
    """Read and check a ``results.json`` (or the one inside the folder ``path``).

    Raises:
        ValueError: naming the file and the field, for a file that is not valid results.
    """
    path = Path(path)
    if path.is_dir():
        path = path / RESULTS_NAME
    try:
        results = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError) as err:
        raise ValueError(f"{path} is not valid JSON ({err})") from err
    if not isinstance(results, dict) or results.get("format_version") != FORMAT_VERSION:
        version = results.get("format_version") if isinstance(results, dict) else None
        raise ValueError(
            f"{path}: format_version {version!r} is not {FORMAT_VERSION} (rerun the probe)"
        )
    for field in ("task", "task_name", "model_name", "test", "test_low", "test_high"):
        if field not in results:
            raise ValueError(f"{path}: field {field!r} is missing")
    check_fields(path, results)
    return results


def check_fields(path: Path, results: dict[str, Any]) -> None:
    """Refuse fields of another type, and metric values that are not finite or out of range.

    Undefined metrics are ``null`` (how :func:`write_results` stores NaN); any other value
    must be a finite number in the metric's range (:func:`lit_mrl.metrics.metric_range`:
    scores in [0, 1], R² at most 1), so no number in a report is silently wrong.

    Raises:
        ValueError: naming the file and the field.
    """
    from lit_mrl.metrics import metric_range

    kinds = {"task": str, "task_name": str, "model_name": str, "metric": str,
             "test": dict, "test_low": dict, "test_high": dict, "class_names": list}  # fmt: skip
    for field, kind in kinds.items():
        if field in results and not isinstance(results[field], kind):
            raise ValueError(
                f"{path}: field {field!r} is {results[field]!r}, not a {kind.__name__}"
            )
    if not all(isinstance(name, str) for name in results.get("class_names", [])):
        raise ValueError(f"{path}: field 'class_names' holds something else than names")
    for part in ("test", "test_low", "test_high"):
        for metric, value in results[part].items():
            where = f"{path}: field {part}.{metric}"
            if value is None:
                continue
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise ValueError(f"{where} is {value!r}, not a number")
            if not math.isfinite(value):
                raise ValueError(f"{where} is {value}, not a finite number (undefined is null)")
            bounds = metric_range(metric)
            if bounds and not bounds[0] <= value <= bounds[1]:
                low = "" if math.isinf(bounds[0]) else f"{bounds[0]:g} "
                raise ValueError(
                    f"{where} is {value:g}, outside the metric's range ({low}to {bounds[1]:g})"
                )
            if not math.isfinite(100 * value):  # shown x100
                raise ValueError(f"{where} is {value:g}, too large to report")


def log_to_wandb(results: dict[str, Any], out: str | Path, project: str = "lit_mrl") -> None:
    """Log the grid, per-class and test metrics to W&B under ``probe/...``.

    Offline unless an account is configured (``WANDB_MODE`` is respected, so
    ``disabled`` logs nothing). Keys: ``probe/grid`` and ``probe/per_class`` tables,
    ``probe/val/<metric>`` of the selected config, ``probe/test/<metric>`` (mean over
    seeds) with ``probe/test_low/<metric>`` and ``probe/test_high/<metric>``.
    """
    import wandb

    from lit_mrl.loggers import default_to_offline

    default_to_offline()  # before wandb.init reads WANDB_MODE
    configs = results["configs"]
    metrics = list(configs[0]["val"])
    columns = ["id", "hidden_dims", "dropout", "weight_decay", "lr", "best_step", *metrics]
    grid = wandb.Table(columns=columns)
    for c in configs:
        grid.add_data(
            c["id"], str(c["hidden_dims"]), c["dropout"], c["weight_decay"], c["lr"],
            c["best_step"], *(c["val"][m] for m in metrics),
        )  # fmt: skip
    per_class_data = results["per_class"]
    parts = [(m, part) for m in per_class_data for part in ("mean", "low", "high")]
    per_class = wandb.Table(columns=["class", *(f"{m}_{part}" for m, part in parts)])
    for i, name in enumerate(results["class_names"]):
        per_class.add_data(name, *(per_class_data[m][part][i] for m, part in parts))
    run = wandb.init(
        project=project,
        job_type="probe",
        name=f"probe-{results['task_name']}-{results['model_name']}",
        dir=str(out),
        config={k: v for k, v in results.items() if k not in ("configs", "per_class")},
    )
    scores = {f"probe/val/{k}": v for k, v in results["val"].items()}
    for part in ("test", "test_low", "test_high"):
        scores.update({f"probe/{part}/{k}": v for k, v in results[part].items()})
    run.log({"probe/grid": grid, "probe/per_class": per_class, **scores})
    run.summary.update(scores)
    run.finish()
