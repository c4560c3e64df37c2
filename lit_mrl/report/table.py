"""The tasks x embedding models table of probe results, with intervals.

Rows are task metrics in the paper's task order (other tasks after, by name), columns
are embedding models, cells are test values x100: the mean over seeds and its 95 %
bootstrap interval. ``--paper`` adds the paper's six models (no intervals: the paper
reports none) for the tasks it has.
"""

from __future__ import annotations

import csv
import io
import math
import warnings
from dataclasses import dataclass, field
from typing import Any

from lit_mrl.report.paper import PAPER_MODELS, PAPER_ROWS, PAPER_TASKS, paper_task
from lit_mrl.tasks import metric_label, report_metrics

Cell = tuple[float, float | None, float | None]  # mean, low, high (x100)


@dataclass
class Table:
    """Report rows x columns.

    Args:
        rows: ``(task, metric key)`` per row; the paper's display name for its tasks.
        labels: display label per row.
        columns: column names (our models, then ``paper: <model>`` columns).
        cells: ``cells[row][column]``: ``(mean, low, high)`` x100, or ``None``.
        ours: how many leading columns are our models (the rest are the paper's).
    """

    rows: list[tuple[str, str]] = field(default_factory=list)
    labels: list[str] = field(default_factory=list)
    columns: list[str] = field(default_factory=list)
    cells: list[list[Cell | None]] = field(default_factory=list)
    ours: int = 0

    def best(self, row: int) -> tuple[int | None, bool]:
        """Our best column in ``row`` and whether its interval clears the runner-up's.

        Every metric here is higher-is-better. Returns ``(None, False)`` with fewer than
        one value; a single value counts as separated.
        """
        ranked = sorted(
            ((cell[0], j) for j, cell in enumerate(self.cells[row][: self.ours]) if cell),
            reverse=True,
        )
        if not ranked:
            return None, False
        if len(ranked) == 1:
            return ranked[0][1], True
        best, runner = self.cells[row][ranked[0][1]], self.cells[row][ranked[1][1]]
        separated = None not in (best[1], runner[2]) and best[1] > runner[2]
        return ranked[0][1], separated


def result_metrics(result: dict[str, Any]) -> list[str]:
    """The metric rows of a task that the paper does not report (the task table's)."""
    return report_metrics(result["task"], result["metric"], result["class_names"])


def _x100(value: float | None) -> float | None:
    return None if value is None or not math.isfinite(value) else 100.0 * value


def _cell(result: dict[str, Any] | None, metric: str) -> Cell | None:
    if result is None or _x100(result["test"].get(metric)) is None:
        return None
    mean = _x100(result["test"][metric])
    return mean, _x100(result["test_low"].get(metric)), _x100(result["test_high"].get(metric))


def one_line(name: str) -> str:
    """A task or model name on one line: newlines, tabs and runs of spaces become one space."""
    return " ".join(name.split())


def _markdown_text(text: str) -> str:
    """``text`` inside a markdown table cell: a ``|`` would end the cell."""
    return text.replace("\\", "\\\\").replace("|", "\\|")


def build_table(results: list[dict[str, Any]], paper: bool = False) -> Table:
    """Rows in the paper's order (then other tasks by name), one column per model.

    Args:
        results: loaded ``results.json`` dicts.
        paper: add the paper's reference columns (filled for the paper's tasks only);
            with no results at all, the whole paper table.
    """
    found: dict[tuple[str, str], dict[str, Any]] = {}  # (task, model) -> result
    models: list[str] = []
    tasks: dict[str, dict[str, Any]] = {}  # task -> one of its results
    for result in results:
        # Spellings of one paper task ("mtt", "MagnaTagATune") share a row.
        task = paper_task(result["task_name"]) or one_line(result["task_name"])
        model = one_line(result["model_name"])
        if (task, model) in found:
            warnings.warn(f"several results for {task} / {model}: the last is used", stacklevel=2)
        found[task, model] = result
        models += [model] if model not in models else []
        tasks[task] = result
    order = list(PAPER_TASKS)
    names = sorted(tasks, key=lambda t: (order.index(t) if t in order else len(order), t))
    if paper and not results:
        names = order
    table = Table(
        columns=models + ([f"paper: {m}" for m in PAPER_MODELS] if paper else []),
        ours=len(models),
    )
    for name in names:
        rows = [r for r in PAPER_ROWS if r.task == name]
        metrics = [r.metric for r in rows] if rows else result_metrics(tasks[name])
        for metric in metrics:
            cells: list[Cell | None] = [_cell(found.get((name, m)), metric) for m in models]
            if paper:
                reference = next((r.values for r in rows if r.metric == metric), None)
                cells += [(v, None, None) for v in reference] if reference else [None] * 6
            display = PAPER_TASKS.get(name, name)
            table.rows.append((display, metric))
            table.labels.append(f"{display} {metric_label(metric)}")
            table.cells.append(cells)
    return table


def format_cell(cell: Cell | None) -> str:
    """``81.2 ± 2.1`` (half the interval's width), ``81.2`` without one, ``-`` when empty."""
    if cell is None:
        return "-"
    mean, low, high = cell
    if low is None or high is None:
        return f"{mean:.1f}"
    return f"{mean:.1f} ± {(high - low) / 2:.1f}"


def to_markdown(table: Table, notes: list[str]) -> str:
    """The table as GitHub markdown, with notes under it.

    Our best model in each row is bold; a dagger marks a best whose interval overlaps
    the runner-up's (the two are not separated).
    """
    lines = [
        "| task | metric | " + " | ".join(map(_markdown_text, table.columns)) + " |",
        "|---|---|" + "---:|" * len(table.columns),
    ]
    for i, ((task, metric), cells) in enumerate(zip(table.rows, table.cells, strict=True)):
        shown = [format_cell(c) for c in cells]
        best, separated = table.best(i)
        if best is not None and table.ours > 1:
            shown[best] = f"**{shown[best]}**" + ("" if separated else " †")
        row = [_markdown_text(task), metric_label(metric), *shown]
        lines.append(f"| {' | '.join(row)} |")
    return "\n".join(["# Probe results (test split, x100)", "", *lines, "", *notes]) + "\n"


def to_csv(table: Table) -> str:
    """One row per task metric: ``task, metric`` then mean, low, high per column (x100)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(
        [
            "task",
            "metric",
            *(f"{c} {part}" for c in table.columns for part in ("mean", "low", "high")),
        ]
    )
    for (task, metric), cells in zip(table.rows, table.cells, strict=True):
        values = []
        for cell in cells:
            values += ["", "", ""] if cell is None else [
                "" if v is None else f"{v:.2f}" for v in cell
            ]  # fmt: skip
        writer.writerow([task, metric, *values])
    return buffer.getvalue()
