"""The paper's six recipes (configs/paper/) train through the real CLI, and scale out."""

import re
from pathlib import Path

import pytest
import torch
import yaml

from lit_mrl.cli import main
from lit_mrl.cli.lightning import make_cli
from lit_mrl.data.datamodule import ShardDataModule

ROOT = Path(__file__).resolve().parent.parent
RECIPES = sorted((ROOT / "configs" / "paper").glob("*.yaml"))
GLOBAL_BATCH = {"contrastive_large": 1920, "contrastive_small": 480, "supervised": 960}
# toy size: the tiny encoder (its own overlay) plus this; the recipe keeps everything else
TOY = {
    "trainer": {"accelerator": "cpu", "devices": 1, "num_nodes": 1, "strategy": "auto",
                "precision": "32-true", "max_epochs": 1, "limit_val_batches": 1,
                "num_sanity_val_steps": 0, "logger": False, "enable_progress_bar": False},
    "data": {"batch_size": 4, "num_workers": 0, "clip_seconds": 0.5, "steps_per_epoch": 1,
             "shuffle_buffer": 8},
    "model": {"init_args": {"projector_dims": [16]}},
}  # fmt: skip


def test_there_are_six_recipes_two_domains_by_three_methods():
    names = {p.stem for p in RECIPES}
    assert names == {f"{d}_{m}" for d in ("music", "generic") for m in GLOBAL_BATCH}


@pytest.fixture(scope="module")
def toy_overlay(tmp_path_factory):
    path = tmp_path_factory.mktemp("paper") / "toy.yaml"
    path.write_text(yaml.safe_dump(TOY))
    return path


@pytest.mark.parametrize("recipe", RECIPES, ids=lambda p: p.stem)
def test_recipe_fits_one_step_at_toy_size(recipe, toy_overlay, tiny_shards, tmp_path, monkeypatch):
    for name, value in (("PL_GLOBAL_SEED", "0"), ("PL_SEED_WORKERS", "0")):
        monkeypatch.setenv(name, value)  # the CLI sets them; undone after the test
    args = ["fit", "-c", str(ROOT / "configs/trainer.yaml"), "-c", str(recipe),
            "-c", str(ROOT / "configs/encoder/sfnfnet_tiny.yaml"), "-c", str(toy_overlay),
            f"--data.root={tiny_shards}", f"--trainer.default_root_dir={tmp_path}"]  # fmt: skip
    if "supervised" in recipe.stem:
        args.append("--model.init_args.num_tags=null")  # AudioSet's 527 -> the shards' 3
    main(args)
    (last,) = tmp_path.glob("**/checkpoints/last.ckpt")
    ckpt = torch.load(last, map_location="cpu", weights_only=True)
    assert ckpt["global_step"] == 1
    if "supervised" in recipe.stem:
        assert ckpt["state_dict"]["head.out.weight"].shape[0] == 3  # tiny_shards' tags


def overrides(line: str, base: dict[str, int]) -> dict[str, int]:
    found = dict(base)
    pattern = r"--(trainer\.devices|trainer\.num_nodes|data\.batch_size) (\d+)"
    found.update({key: int(value) for key, value in re.findall(pattern, line)})
    return found


@pytest.mark.parametrize("recipe", RECIPES, ids=lambda p: p.stem)
def test_every_command_in_the_header_keeps_the_global_batch(recipe):
    config = yaml.safe_load(recipe.read_text())
    base = {"trainer.devices": config["trainer"]["devices"],
            "trainer.num_nodes": config["trainer"]["num_nodes"],
            "data.batch_size": config["data"]["batch_size"]}  # fmt: skip
    expected = GLOBAL_BATCH[recipe.stem.split("_", 1)[1]]
    header = [line for line in recipe.read_text().splitlines() if line.startswith("#")]
    commands = [line for line in header if re.match(r"#\s+\d+ GPUs?\b", line)]
    assert {re.match(r"#\s+(\d+)", c).group(1) for c in commands} >= {"1", "16"}
    for line in commands:
        n = overrides(line, base)
        gpus = n["trainer.devices"] * n["trainer.num_nodes"]
        assert int(re.match(r"#\s+(\d+)", line).group(1)) == gpus, line
        assert gpus * n["data.batch_size"] == expected, line


def test_audioset_recipe_refuses_shards_without_its_527_classes(tiny_shards):
    args = ["-c", str(ROOT / "configs/trainer.yaml"), "-c", str(ROOT / "configs/paper/generic_supervised.yaml"),
            f"--data.root={tiny_shards}", "--trainer.logger=false"]  # fmt: skip
    with pytest.raises(ValueError, match=r"num_tags=527 .* 3 labels"):
        make_cli(args, run=False)


@pytest.mark.parametrize("rank", [0, 1])
def test_every_ddp_rank_validates_on_the_whole_split(tiny_shards, monkeypatch, rank):
    # one validation shard, two ranks: a rank left without batches would hang DDP
    monkeypatch.setenv("RANK", str(rank))
    monkeypatch.setenv("WORLD_SIZE", "2")
    dm = ShardDataModule(str(tiny_shards), batch_size=3, num_workers=0, clip_seconds=0.5)
    keys = [k for batch in dm.val_dataloader() for k in batch["key"]]
    assert sorted(keys) == [f"valid_{i:03d}" for i in range(8)]
