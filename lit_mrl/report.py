"""``python -m lit_mrl report``: a tasks x embedding models table of probe results.

Reads the ``results.json`` of probe searches (``python -m lit_mrl probe``), one row per
task metric in the paper's task order (other tasks after, by name), one column per
embedding model, test values x100; ``--paper`` adds the paper's six models for the
tasks it reports (:mod:`lit_mrl.paper_results`). Writes markdown, CSV and a bar chart.
"""

import argparse
import csv
import math
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lit_mrl.paper_results import (
    PAPER_MODELS,
    PAPER_ROWS,
    PAPER_TASKS,
    metric_label,
    paper_task,
)
from lit_mrl.probe_results import RESULTS_NAME, read_results


@dataclass
class Table:
    """Report rows x columns, values x100 (``None``: no value).

    Args:
        rows: ``(task, metric key)`` per row; the paper's display name for its tasks.
        labels: display label per row.
        columns: column names (our models, then ``paper: <model>`` columns).
        values: ``values[row][column]``.
    """

    rows: list[tuple[str, str]] = field(default_factory=list)
    labels: list[str] = field(default_factory=list)
    columns: list[str] = field(default_factory=list)
    values: list[list[float | None]] = field(default_factory=list)


def find_results(paths: list[str]) -> list[Path]:
    """``results.json`` files: the given files, or every one under the given folders."""
    found: list[Path] = []
    for path in map(Path, paths):
        if path.is_file():
            found.append(path)
        elif (path / RESULTS_NAME).is_file():
            found.append(path / RESULTS_NAME)
        else:
            found.extend(sorted(path.rglob(RESULTS_NAME)))
    if paths and not found:
        raise FileNotFoundError(f"no {RESULTS_NAME} under {', '.join(paths)}")
    return found


def result_metrics(result: dict[str, Any]) -> list[str]:
    """The metric rows of a task that the paper does not report, by task type."""
    if result["task"] == "multilabel":
        return ["roc_auc", "pr_auc"]
    if result["task"] == "multiclass":
        return ["mirex_key", "accuracy"] if result["metric"] == "mirex_key" else ["accuracy"]
    outputs = [f"r2_{name}" for name in result["class_names"]]
    return outputs if len(outputs) == 1 else ["r2", *outputs]


def build_table(results: list[dict[str, Any]], paper: bool = False) -> Table:
    """Rows in the paper's order (then other tasks by name), one column per model.

    Args:
        results: loaded ``results.json`` dicts.
        paper: add the paper's reference columns (filled for the paper's tasks only);
            with no results at all, the whole paper table.
    """
    scores: dict[tuple[str, str], dict[str, Any]] = {}  # (task, model) -> test metrics
    models: list[str] = []
    tasks: dict[str, dict[str, Any]] = {}  # task -> one of its results
    for result in results:
        # Spellings of one paper task ("mtt", "MagnaTagATune") share a row.
        task = paper_task(result["task_name"]) or result["task_name"]
        model = result["model_name"]
        if (task, model) in scores:
            warnings.warn(
                f"several results for {task} / {model}: the last one is used", stacklevel=2
            )
        scores[task, model] = result["test"]
        models += [model] if model not in models else []
        tasks[task] = result
    order = list(PAPER_TASKS)
    names = sorted(tasks, key=lambda t: (order.index(t) if t in order else len(order), t))
    if paper and not results:
        names = order
    table = Table(columns=models + ([f"paper: {m}" for m in PAPER_MODELS] if paper else []))
    for name in names:
        rows = [r for r in PAPER_ROWS if r.task == name]
        metrics = [r.metric for r in rows] if rows else result_metrics(tasks[name])
        for metric in metrics:
            values: list[float | None] = [
                _x100(scores.get((name, m), {}).get(metric)) for m in models
            ]
            if paper:
                reference = next((r.values for r in rows if r.metric == metric), None)
                values += list(reference) if reference else [None] * len(PAPER_MODELS)
            display = PAPER_TASKS.get(name, name)
            table.rows.append((display, metric))
            table.labels.append(f"{display} {metric_label(metric)}")
            table.values.append(values)
    return table


def _x100(value: float | None) -> float | None:
    return None if value is None or not math.isfinite(value) else 100.0 * value


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def to_markdown(table: Table, notes: list[str]) -> str:
    """The table as GitHub markdown, with notes under it."""
    lines = [
        "| task | metric | " + " | ".join(table.columns) + " |",
        "|---|---|" + "---:|" * len(table.columns),
    ]
    for (task, metric), values in zip(table.rows, table.values, strict=True):
        cells = " | ".join(_fmt(v) for v in values)
        lines.append(f"| {task} | {metric_label(metric)} | {cells} |")
    return "\n".join(["# Probe results (test split, x100)", "", *lines, "", *notes]) + "\n"


def write_csv(table: Table, path: Path) -> None:
    """One row per task metric: ``task, metric, <column>...`` (x100, empty = no value)."""
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["task", "metric", *table.columns])
        for (task, metric), values in zip(table.rows, table.values, strict=True):
            writer.writerow([task, metric, *("" if v is None else f"{v:.2f}" for v in values)])


def plot(table: Table, path: Path) -> None:
    """Horizontal grouped bars: one group per row, one bar per column (Agg backend)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    count = max(1, len(table.columns))
    height = 0.8 / count
    fig, ax = plt.subplots(figsize=(11, 1.0 + 0.35 * len(table.rows) * max(1, count / 3)))
    for j, column in enumerate(table.columns):
        ys = [i + j * height for i in range(len(table.rows))]
        xs = [0.0 if row[j] is None else row[j] for row in table.values]
        ax.barh(ys, xs, height=height, label=column)
    ax.set_yticks([i + (count - 1) * height / 2 for i in range(len(table.rows))], table.labels)
    ax.invert_yaxis()
    ax.set_xlabel("test score x100")
    ax.legend(fontsize="small", loc="upper left", bbox_to_anchor=(1.01, 1.0))
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def parse_args(args: list[str] | None) -> argparse.Namespace:
    """Parse the ``report`` command line."""
    parser = argparse.ArgumentParser(
        prog="python -m lit_mrl report",
        description="Tasks x embedding models table from probe results (values x100).",
    )
    parser.add_argument("results", nargs="*", help="results.json files or folders holding them")
    parser.add_argument("--out", default="report.md", help="markdown file")
    parser.add_argument("--csv", help="also write the table as CSV")
    parser.add_argument("--png", help="also draw a bar chart")
    parser.add_argument("--paper", action="store_true", help="add the paper's reference columns")
    parser.add_argument("--wandb", action="store_true", help="also log the table to W&B")
    opts = parser.parse_args(args)
    if not opts.results and not opts.paper:
        parser.error("give results folders, or --paper for the paper's table alone")
    return opts


def main(args: list[str] | None = None) -> Table:
    """``python -m lit_mrl report``: write the markdown (and CSV, PNG) and print it."""
    opts = parse_args(args)
    results = [read_results(p) for p in find_results(opts.results)]
    table = build_table(results, paper=opts.paper)
    notes = [
        "Each cell: the probe config selected on the validation split, evaluated on the test "
        "split (mean over seeds). ROC-AUC / AP: macro over tags; accuracy: top-1; MIREX "
        "weighted: 1 same key, 0.5 fifth above, 0.3 relative, 0.2 parallel; R²: per output.",
    ]
    if opts.paper:
        notes.append(
            "paper: McCallum et al., ISMIR 2022, rebuilt from the released per-class results "
            "(https://arxiv.org/abs/2210.03799)."
        )
    markdown = to_markdown(table, notes)
    Path(opts.out).write_text(markdown)
    if opts.csv:
        write_csv(table, Path(opts.csv))
    if opts.png:
        plot(table, Path(opts.png))
    if opts.wandb:
        _log_wandb(table)
    print(markdown)
    return table


def _log_wandb(table: Table) -> None:
    import wandb

    from lit_mrl.wandb_offline import default_to_offline

    default_to_offline()  # before wandb.init reads WANDB_MODE

    data = [[t, m, *v] for (t, m), v in zip(table.rows, table.values, strict=True)]
    run = wandb.init(project="lit_mrl", job_type="report")
    run.log({"report/table": wandb.Table(columns=["task", "metric", *table.columns], data=data)})
    run.finish()
