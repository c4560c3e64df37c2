"""bench.gpu_recipe: the GPU recipe's command lines, its summary, and a CPU run at toy size."""

import json

import pytest

from bench.gpu_recipe import fit_args, last_probe, main, parse_args


def test_fit_args_compose_the_recipe(tmp_path):
    opts = parse_args(["--out", str(tmp_path), "--steps", "800", "--minutes", "2.5"])
    args = fit_args(opts, tmp_path / "shards", "contrastive")
    configs = [args[i + 1] for i, a in enumerate(args) if a == "-c"]
    assert [c.rsplit("configs/", 1)[1] for c in configs] == [
        "trainer.yaml", "demo/contrastive.yaml", "demo/augment.yaml", "encoder/sfnfnet_f0.yaml",
    ]  # fmt: skip
    assert "--trainer.max_time=00:00:02:30" in args
    assert "--data.steps_per_epoch=200" in args  # 4 online probes over 800 steps
    assert "--trainer.precision=bf16-mixed" in args
    supervised = fit_args(opts, tmp_path / "shards", "supervised")
    assert not any("augment" in a for a in supervised)


def test_last_probe_reads_the_bars_of_the_last_row(tmp_path):
    csv = tmp_path / "metrics.csv"
    csv.write_text(
        "epoch,step,online_probe/pitch/accuracy,online_probe/pitch/accuracy_logmel,"
        "online_probe/pitch/accuracy_random,train/loss\n"
        "0,0,0.2,0.8,0.2,\n0,5,,,,1.5\n1,10,0.5,0.8,0.2,\n"
    )
    assert last_probe(csv) == {
        "pitch/accuracy": {"encoder": 0.5, "logmel": 0.8, "random": 0.2, "step": 10}
    }


@pytest.mark.slow
def test_smoke_run_on_cpu(tmp_path):
    assert main(["--out", str(tmp_path), "--smoke", "--methods", "contrastive"]) == 0
    summary = json.loads((tmp_path / "gpu_recipe.json").read_text())
    probe = summary["methods"]["contrastive"]["probe"]
    assert set(probe) == {"pitch/accuracy", "instrument/accuracy", "key/mirex_key",
                          "tempo/accuracy", "tags/roc_auc"}  # fmt: skip
    assert all({"encoder", "logmel", "random"} <= set(s) for s in probe.values())
