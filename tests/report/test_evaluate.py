"""``python -m lit_mrl evaluate``: every task folder, every model, one report."""

import json

from lit_mrl.cli import main


def test_evaluate_embeds_probes_and_reports_every_task_beside_the_baseline(
    tiny_checkpoint, tiny_shards, tiny_multiclass_shards, tmp_path, capsys
):
    shards = tmp_path / "shards"
    shards.mkdir()
    (shards / "bands").symlink_to(tiny_shards)
    (shards / "bandclass").symlink_to(tiny_multiclass_shards)
    (shards / "notes").mkdir()  # a folder without info.json is not a task
    out = tmp_path / "eval"
    args = ["evaluate", "--checkpoint", str(tiny_checkpoint), "--name", "mine",
            "--shards", str(shards), "--out", str(out), "--grid", "demo", "--seeds", "1",
            "--steps", "50", "--num_workers", "0", "--paper", "false"]  # fmt: skip
    assert main(args) == 0
    for model in ("mine", "logmel-stats"):
        for task in ("bands", "bandclass"):
            results = json.loads((out / "results" / model / task / "results.json").read_text())
            assert results["model_name"] == model
            assert results["task_name"] == task
    report = (out / "report.md").read_text()
    assert "mine" in report
    assert "logmel-stats" in report
    before = (out / "results" / "mine" / "bands" / "results.json").stat().st_mtime_ns
    assert main(args) == 0  # a rerun resumes: nothing is probed again
    assert (out / "results" / "mine" / "bands" / "results.json").stat().st_mtime_ns == before
