"""``python -m lit_mrl report``: the tasks x models table (markdown, CSV, chart, W&B)."""

from __future__ import annotations

from pathlib import Path

from lit_mrl.errors import UsageError

NOTES = [
    "Each cell: the probe config selected on the validation split, trained with K seeds and "
    "evaluated on the test split: mean over seeds ± half the 95 % bootstrap interval over "
    "test items and seeds. Bold: the best of our models in the row; †: its interval overlaps "
    "the runner-up's, so the two are not separated. ROC-AUC / AP: macro over tags; accuracy: "
    "top-1; MIREX weighted: 1 same key, 0.5 fifth above, 0.3 relative, 0.2 parallel; R²: per "
    "output.",
]
PAPER_NOTE = (
    "paper: McCallum et al., ISMIR 2022, rebuilt from the released per-class results "
    "(https://arxiv.org/abs/2210.03799); the paper reports no intervals."
)


def find_results(paths: list[str]) -> list[Path]:
    """``results.json`` files: the given files, or every one under the given folders.

    Raises:
        UsageError: a path does not exist, or nothing is found under the paths.
    """
    from lit_mrl.probe.results import RESULTS_NAME

    found: list[Path] = []
    for path in map(Path, paths):
        if path.is_file():
            found.append(path)
        elif path.is_dir():
            found.extend(sorted(path.rglob(RESULTS_NAME)))
        else:
            raise UsageError(f"{path} does not exist")
    if paths and not found:
        raise UsageError(
            f"no {RESULTS_NAME} under {', '.join(paths)} (run python -m lit_mrl probe)"
        )
    return found


def report(
    results: list[str] | None = None,
    out: str = "report.md",
    csv: str | None = None,
    png: str | None = None,
    paper: bool = False,
    wandb: bool = False,
) -> int:
    """Tasks x embedding models table of probe results (values x100, 95 % intervals).

    Args:
        results: results.json files, or folders searched for them.
        out: markdown file.
        csv: also write the table as CSV (mean, low, high per model).
        png: also draw the chart (one panel per kind of metric, with error bars).
        paper: add the paper's reference columns.
        wandb: also log the table to W&B (offline by default).

    Returns:
        0 (errors raise).
    """
    from lit_mrl.probe.results import read_results
    from lit_mrl.report.plot import plot
    from lit_mrl.report.table import build_table, to_csv, to_markdown

    if not results and not paper:
        raise UsageError("give results folders, or --paper true for the paper's table alone")
    table = build_table([read_results(p) for p in find_results(results or [])], paper=paper)
    markdown = to_markdown(table, NOTES + ([PAPER_NOTE] if paper else []))
    Path(out).write_text(markdown)
    if csv:
        Path(csv).write_text(to_csv(table))
    if png:
        plot(table, Path(png))
    if wandb:
        _log_wandb(table)
    print(markdown)
    return 0


def _log_wandb(table: object) -> None:
    import wandb

    from lit_mrl.loggers import default_to_offline
    from lit_mrl.report.table import format_cell

    default_to_offline()  # before wandb.init reads WANDB_MODE
    data = [
        [task, metric, *(format_cell(c) for c in cells)]
        for (task, metric), cells in zip(table.rows, table.cells, strict=True)
    ]
    run = wandb.init(project="lit_mrl", job_type="report")
    run.log({"report/table": wandb.Table(columns=["task", "metric", *table.columns], data=data)})
    run.finish()
