"""``docs/scale_study.md`` and ``.png`` from a scale study's ``study.json``.

python -m bench.scale_study_docs study_out/study.json
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

TASKS = ("pitch", "instrument", "key", "tempo", "tags")
COLOURS = {"supervised": "tab:blue", "contrastive": "tab:orange", "contrastive_aug": "tab:green"}
MARKERS = {"tiny": "o", "xs": "s", "s": "^", "m": "D"}
METRIC_NAMES = {"accuracy": "acc", "mirex_key": "MIREX", "roc_auc": "ROC-AUC"}


def cell(score: dict) -> str:
    half = (score["high"] - score["low"]) / 2
    return f"{score['mean']:.1f} ± {half:.1f}"


def table(summary: dict) -> list[str]:
    """Markdown rows: baselines, then every point, with the best per task in bold."""
    header = (
        "| model | steps | train TFLOP | fit min (shared CPU) | "
        + " | ".join(
            f"{t} {METRIC_NAMES.get(summary['baselines']['logmel-stats'][t]['metric'], '')}"
            for t in TASKS
        )
        + " |"
    )
    rows = [header, "|---|---:|---:|---:|" + "---:|" * len(TASKS)]
    entries = [(name, "-", "-", "-", scores) for name, scores in summary["baselines"].items()]
    for point in summary["points"]:
        entries.append((f"{point['method']} {point['rung']}", str(point["steps"]),
                        f"{1000 * point['train_pflop']:.2g}", f"{point['fit_seconds'] / 60:.1f}",
                        point["scores"]))  # fmt: skip
    best = {t: max(e[4][t]["mean"] for e in entries) for t in TASKS}
    for name, steps, pflop, minutes, scores in entries:
        cells = []
        for task in TASKS:
            text = cell(scores[task])
            cells.append(f"**{text}**" if scores[task]["mean"] == best[task] else text)
        rows.append(f"| {name} | {steps} | {pflop} | {minutes} | " + " | ".join(cells) + " |")
    return rows


def online_table(summary: dict) -> list[str]:
    """Markdown rows: each point's last online probe (train -> valid clips, ridge), x100.

    This is what a configuration is picked on (validation, never test): the encoder's
    score, then the log-mel and random-weight bars of the same probe.
    """
    from bench.gpu_recipe import last_probe

    rows = ["| model | steps | " + " | ".join(f"{t} (enc / log-mel / random)" for t in TASKS)
            + " |", "|---|---:|" + "---|" * len(TASKS)]  # fmt: skip
    for point in summary["points"]:
        path = Path(point.get("metrics_csv", ""))
        if not path.is_file():
            continue
        probe = {key.split("/")[0]: value for key, value in last_probe(path).items()}
        cells = [" / ".join(f"{100 * probe[t][k]:.1f}" for k in ("encoder", "logmel", "random"))
                 if t in probe else "-" for t in TASKS]  # fmt: skip
        step = max((v["step"] for v in probe.values()), default=0)
        rows.append(f"| {point['method']} {point['rung']} | {step} | " + " | ".join(cells) + " |")
    return rows


def plot(summary: dict, path: Path) -> None:
    """Score vs pre-training compute per task: a line per (method, rung), the bars flat."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(4 * len(TASKS), 3.6))
    axes = fig.subplots(1, len(TASKS), squeeze=False)[0]
    points = summary["points"]
    for ax, task in zip(axes, TASKS, strict=True):
        base = summary["baselines"]["logmel-stats"][task]
        ax.axhline(base["mean"], color="black", linestyle="--", label="log-mel stats")
        ax.axhspan(base["low"], base["high"], color="black", alpha=0.08)
        for method, colour in COLOURS.items():
            for rung, marker in MARKERS.items():
                mine = sorted((p for p in points if p["method"] == method and p["rung"] == rung),
                              key=lambda p: p["train_pflop"])  # fmt: skip
                if not mine:
                    continue
                x = [1000 * p["train_pflop"] for p in mine]
                y = [p["scores"][task]["mean"] for p in mine]
                err = [[v - p["scores"][task]["low"] for v, p in zip(y, mine, strict=True)],
                       [p["scores"][task]["high"] - v for v, p in zip(y, mine, strict=True)]]  # fmt: skip
                ax.errorbar(x, y, yerr=err, color=colour, marker=marker, capsize=2,
                            label=f"{method} {rung}")  # fmt: skip
        lows = [1000 * p["train_pflop"] for p in points] or [1.0]
        for rung, marker in MARKERS.items():
            random = summary["baselines"].get(f"random-{rung}")
            if random is not None:
                ax.plot([min(lows) / 2], [random[task]["mean"]], marker=marker, color="grey",
                        linestyle="none", label=f"random {rung}")  # fmt: skip
        ax.set_xscale("log")
        ax.minorticks_off()
        low, high = min(lows) / 2, max(lows)
        ticks = [2.0**k for k in range(-12, 12) if low / 1.5 <= 2.0**k <= high * 1.5]
        ax.set_xticks(ticks, [f"{t:g}" for t in ticks])
        ax.set_xlabel("pre-training compute (TFLOP)")
        ax.set_title(f"{task} ({base['metric']})")
    axes[0].set_ylabel("test score x100 (95 % interval)")
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=6, fontsize=7)
    fig.tight_layout(rect=(0, 0.12, 1, 1))
    FigureCanvasAgg(fig).print_png(str(path))


def write_docs(summary: dict, docs: Path, command: str) -> None:
    """Write ``scale_study.md`` (the table; the prose around it is kept) and the plot."""
    docs.mkdir(parents=True, exist_ok=True)
    plot(summary, docs / "scale_study.png")
    lines = [
        f"<!-- table: written by {command} -->",
        f"Corpus: the demo corpus, `--realism {summary['realism']}`. Test split, x100, mean ±",
        "half the 95 % interval; probes: the demo grid, selected on validation.",
        "",
        *table(summary),
        "",
        "The online probe at the last logged step of each point (ridge on at most 200 clips",
        "per task, train -> valid; the numbers the demo's configuration is chosen on):",
        "",
        *online_table(summary),
        "<!-- /table -->",
    ]
    target = docs / "scale_study.md"
    block = "\n".join(lines)
    if target.exists() and "<!-- /table -->" in target.read_text():
        text = target.read_text()
        start = text.index("<!-- table:")
        end = text.index("<!-- /table -->") + len("<!-- /table -->")
        target.write_text(text[:start] + block + text[end:])
    else:
        target.write_text("# The scale study\n\n" + block + "\n")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("study", type=Path)
    parser.add_argument("--docs", type=Path, default=Path(__file__).resolve().parents[1] / "docs")
    opts = parser.parse_args(argv)
    write_docs(
        json.loads(opts.study.read_text()),
        opts.docs,
        f"python -m bench.scale_study_docs {opts.study}",
    )


if __name__ == "__main__":
    main()
