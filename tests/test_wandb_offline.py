import pytest

from lit_mrl.wandb_offline import BLOCK_SIZE, find_runs, iter_record_bytes, read_run


def make_offline_run(root, name, steps, **extra):
    """A real W&B offline run under ``root/wandb`` (no network); returns its folder."""
    import wandb

    run = wandb.init(
        project="lit_mrl_test", name=name, dir=str(root), mode="offline", config={"lr": 0.01}
    )
    run.config.update({"model": {"class_path": "Tiny"}})
    for step in range(steps):
        run.log({"train/loss": 1.0 / (step + 1), "trainer/global_step": step, **extra})
        if step % 10 == 9:
            run.log({"val/loss": 0.5, "trainer/global_step": step})
    run.finish()
    wandb.teardown()  # finish() can return before the service has flushed the file
    (folder,) = find_runs(root)
    return folder


@pytest.fixture(scope="module")
def offline_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("wandb_offline")
    return make_offline_run(root, "demo-tiny", 400)  # about 150 kB: several 32 KiB blocks


def test_reads_history_config_and_name(offline_run):
    (log,) = offline_run.glob("run-*.wandb")
    assert log.stat().st_size > 2 * BLOCK_SIZE  # the framing across blocks is exercised
    run = read_run(offline_run)
    assert run.complete
    assert run.name == "demo-tiny"
    assert run.project == "lit_mrl_test"
    assert run.config["lr"] == 0.01
    assert run.config["model"] == {"class_path": "Tiny"}
    steps, losses = run.metric("train/loss", step="trainer/global_step")
    assert steps == list(range(400))
    assert losses == pytest.approx([1.0 / (s + 1) for s in range(400)])
    val_steps, _ = run.metric("val/loss", step="trainer/global_step")
    assert val_steps == list(range(9, 400, 10))
    assert run.summary["train/loss"] == pytest.approx(1.0 / 400)


def test_record_split_over_blocks_is_joined(tmp_path):
    run = read_run(make_offline_run(tmp_path, "big", 2, blob="x" * 3 * BLOCK_SIZE))
    assert [row["blob"] for row in run.history if "blob" in row] == ["x" * 3 * BLOCK_SIZE] * 2


def test_torn_tail_keeps_earlier_records(offline_run, tmp_path):
    (log,) = offline_run.glob("run-*.wandb")
    whole = list(iter_record_bytes(log))
    torn = tmp_path / "run-torn.wandb"
    torn.write_bytes(log.read_bytes()[: log.stat().st_size // 2])
    records = list(iter_record_bytes(torn))
    assert 0 < len(records) < len(whole)
    assert records == whole[: len(records)]
    torn.rename(tmp_path / "run-x.wandb")
    assert not read_run(tmp_path).complete


def test_rejects_other_files(tmp_path):
    path = tmp_path / "run-x.wandb"
    path.write_bytes(b"not a wandb log at all")
    with pytest.raises(ValueError, match="not a W&B run log"):
        list(iter_record_bytes(path))
    with pytest.raises(FileNotFoundError):
        read_run(tmp_path / "missing")
