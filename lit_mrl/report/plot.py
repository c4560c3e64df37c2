"""The report as a chart: grouped bars with 95 % intervals, one panel per kind of metric.

Each kind (ROC-AUC, AP, accuracy, MIREX score, R²) gets its own panel and scale, so a
very negative R² cannot squeeze every other bar into a sliver: values below the panel's
floor are drawn at the floor and labelled with their value.
"""

from __future__ import annotations

from pathlib import Path

from lit_mrl.report.table import Table

R2_FLOOR = -50.0  # x100: R² below -0.5 is drawn at the floor and labelled


def _kind(metric: str) -> str:
    return "R²" if metric.startswith("r2") else {
        "roc_auc": "ROC-AUC", "pr_auc": "AP", "mirex_key": "MIREX weighted",
    }.get(metric, "accuracy")  # fmt: skip


def plot(table: Table, path: Path) -> None:
    """Write the chart as PNG (Agg backend; no display needed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    kinds: dict[str, list[int]] = {}
    for i, (_, metric) in enumerate(table.rows):
        kinds.setdefault(_kind(metric), []).append(i)
    count = max(1, len(table.columns))
    height = 0.8 / count
    sizes = [max(1.5, 0.3 * len(rows) * max(1.0, count / 3)) for rows in kinds.values()]
    fig, axes = plt.subplots(
        len(kinds), 1, figsize=(11, 1.2 + sum(sizes)), squeeze=False,
        gridspec_kw={"height_ratios": sizes},
    )  # fmt: skip
    for ax, (kind, rows) in zip(axes[:, 0], kinds.items(), strict=True):
        floor = R2_FLOOR if kind == "R²" else 0.0
        for j, column in enumerate(table.columns):
            ys, xs, errors = [], [], [[], []]
            for k, row in enumerate(rows):
                cell = table.cells[row][j]
                if cell is None:
                    continue
                mean, low, high = cell
                shown = max(mean, floor)
                ys.append(k + j * height)
                xs.append(shown)
                errors[0].append(0.0 if low is None else max(shown - max(low, floor), 0.0))
                errors[1].append(0.0 if high is None else max(high - shown, 0.0))
                if mean < floor:
                    ax.annotate(f"{mean:.0f}", (floor, k + j * height), fontsize=6, va="center")
            ax.barh(ys, xs, height=height, xerr=errors, capsize=2, label=column,
                    error_kw={"elinewidth": 0.8}, color=f"C{j}")  # fmt: skip
        ticks = [k + (count - 1) * height / 2 for k in range(len(rows))]
        ax.set_yticks(ticks, [table.labels[r] for r in rows], fontsize=8)
        ax.invert_yaxis()
        ax.set_xlim(left=floor if kind == "R²" else 0.0)
        ax.axvline(0.0, color="black", linewidth=0.6)
        ax.set_xlabel(f"{kind} x100 (test; bars: mean over seeds, whiskers: 95 % interval)")
    axes[0, 0].legend(fontsize="small", loc="upper left", bbox_to_anchor=(1.01, 1.0))
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
