"""``python -m lit_mrl evaluate``: embed -> probe -> report, over every task folder.

One orchestration of the evaluation protocol, used by ``make eval``, the demo and the
scale study: every model embeds every task (a rerun resumes or skips finished folders),
every (task, model) gets a probe search (``configs/probe/<task>.yaml`` when there is
one), and the report puts them side by side, beside the trivial log-mel baseline::

    out/embeddings/<model>/<task>/   out/results/<model>/<task>/   out/report.{md,csv,png}
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from jsonargparse.typing import PositiveInt

from lit_mrl.errors import UsageError

CONFIGS = Path(__file__).resolve().parents[1] / "configs"
BASELINE = "logmel-stats"


def baseline_source() -> dict[str, Any]:
    """The log-mel band statistics every encoder should beat, as an ``embed`` source."""
    return {"model": str(CONFIGS / "baselines" / "logmel_stats.yaml")}


def find_tasks(shards: Path, names: list[str] | None) -> dict[str, Path]:
    """``{task: shard folder}`` of every folder under ``shards`` holding ``info.json``.

    Raises:
        UsageError: a named task has no shards, or there are none at all.
    """
    found = {p.parent.name: p.parent for p in sorted(shards.glob("*/info.json"))}
    if names:
        missing = [n for n in names if n not in found]
        if missing:
            raise UsageError(f"no {shards}/<task>/info.json for {', '.join(missing)}")
        found = {n: found[n] for n in names}
    if not found:
        raise UsageError(f"no task folders (<task>/info.json) under {shards}")
    return found


def probe_config(task: str, configs: Path | None) -> dict[str, Any]:
    """The sections of ``configs/<task>.yaml`` as ``probe`` keyword arguments, if it exists."""
    import yaml

    path = (configs or CONFIGS / "probe") / f"{task}.yaml"
    if not path.is_file():
        return {}
    content = yaml.safe_load(path.read_text()) or {}
    sections = {k: content[k] for k in ("trainer", "model", "data") if k in content}
    if "data" in sections:  # the folder comes from here, not from the config's example path
        init_args = dict(sections["data"].get("init_args") or {})
        init_args.pop("root", None)
        sections["data"] = {**sections["data"], "init_args": init_args}
    if "seed_everything" in content:
        sections["seed_everything"] = content["seed_everything"]
    return sections


def embed_all(out: Path, tasks: dict[str, Path], models: dict[str, dict], workers: int) -> None:
    """Embed every task with every model (finished folders are skipped, broken runs resume)."""
    from lit_mrl.embed.command import embed

    for model, source in models.items():
        for task, shards in tasks.items():
            code = embed(input=str(shards), out=str(out / "embeddings" / model / task),
                         num_workers=workers, **source)  # fmt: skip
            if code:
                raise UsageError(f"embedding {task} with {model} failed for some tracks")


def probe_all(
    out: Path,
    tasks: dict[str, Path],
    models: list[str],
    options: dict[str, Any],
    configs: Path | None = None,
    task_names: dict[str, str] | None = None,
    metrics: dict[str, str] | None = None,
) -> list[Path]:
    """Search a probe per (task, model) unless its ``results.json`` exists; the folders.

    ``options`` go to every ``probe`` call (grid, seeds, ...), after the task's config;
    ``task_names`` are report rows, ``metrics`` a selection metric per task (default:
    the MIREX weighted score for a 24-key vocabulary, as :func:`lit_mrl.tasks.default_metric`
    says, else the config's or the task type's).
    """
    from lit_mrl.formats.embeddings import read_index
    from lit_mrl.probe.command import probe
    from lit_mrl.tasks import default_metric

    folders = []
    for model in models:
        for task in tasks:
            dest = out / "results" / model / task
            folders.append(dest)
            if (dest / "results.json").exists():
                continue
            embeddings = out / "embeddings" / model / task
            index = read_index(embeddings)
            metric = (metrics or {}).get(task, default_metric(index.task, list(index.vocabulary)))
            chosen = {} if metric == "default" else {"metric": metric}
            probe(embeddings=str(embeddings), out=str(dest),
                  task_name=(task_names or {}).get(task, task), model_name=model,
                  **{**probe_config(task, configs), **options, **chosen})  # fmt: skip
    return folders


def write_report(out: Path, folders: list[Path], paper: bool = False) -> Path:
    """The tasks x models report (markdown, CSV, chart) of the results folders."""
    from lit_mrl.report.command import report

    report(results=[str(f) for f in folders], out=str(out / "report.md"),
           csv=str(out / "report.csv"), png=str(out / "report.png"), paper=paper)  # fmt: skip
    return out / "report.md"


def evaluate(
    checkpoint: list[str] | str | None = None,
    name: list[str] | str | None = None,
    shards: str = "shards",
    out: str = "eval_out",
    tasks: list[str] | None = None,
    baseline: bool = True,
    random_init: str | None = None,
    grid: str = "small",
    seeds: PositiveInt = 3,
    steps: PositiveInt | None = None,
    num_workers: int = 2,
    paper: bool = True,
    wandb: bool = False,
) -> int:
    """Embed, probe and report every task under --shards for each model, beside the baseline.

    Args:
        checkpoint: checkpoints or encoder folders to evaluate (one, or a list '[a, b]').
        name: a report column name per checkpoint (default: the file or folder name).
        shards: folder of task folders (<task>/info.json), e.g. shards/gtzan, shards/mtat.
        out: output folder (embeddings, results, report); a rerun resumes.
        tasks: task folders to use (default: every one under --shards).
        baseline: also evaluate the log-mel band statistics (configs/baselines).
        random_init: a training config: also evaluate its encoder with random weights.
        grid: probe grid (demo, small, paper, or a YAML file).
        seeds: seeds of each selected probe.
        steps: a fixed step budget per probe (default: the probe's data-scaled budget).
        num_workers: decoding processes of embed.
        paper: put the paper's six models beside ours in the report.
        wandb: log each probe to W&B (offline by default).

    Returns:
        0 (errors raise).
    """
    checkpoints = [checkpoint] if isinstance(checkpoint, str) else list(checkpoint or [])
    names = [name] if isinstance(name, str) else list(name or [])
    if names and len(names) != len(checkpoints):
        raise UsageError(f"{len(names)} --name for {len(checkpoints)} --checkpoint")
    models: dict[str, dict] = {}
    for i, path in enumerate(checkpoints):
        label = names[i] if names else Path(path).stem
        models[label] = {"checkpoint": path}
    if random_init:
        models["random"] = {"random_init": [random_init], "seed": 0}
    if baseline:
        models[BASELINE] = baseline_source()
    if not models:
        raise UsageError("nothing to evaluate: give --checkpoint (or --baseline true)")
    folder = Path(out)
    found = find_tasks(Path(shards), tasks)
    embed_all(folder, found, models, num_workers)
    options = {"grid": grid, "seeds": seeds, "wandb": wandb}
    if steps is not None:
        options["steps"] = steps
    folders = probe_all(folder, found, list(models), options)
    print(f"report: {write_report(folder, folders, paper)}")
    return 0
