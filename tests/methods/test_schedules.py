import math

import pytest
import torch

from lit_mrl.cli import main
from lit_mrl.schedules import WarmupCosineLR, schedule_horizon


def lrs(warmup, total, steps):
    optimizer = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=1.0)
    schedule = WarmupCosineLR(optimizer, warmup_steps=warmup, total_steps=total)
    out = []
    for _ in range(steps):
        out.append(schedule.get_last_lr()[0])
        optimizer.step()
        schedule.step()
    return out


def test_warm_up_then_cosine_to_zero_at_the_horizon():
    values = lrs(warmup=4, total=20, steps=20)
    assert values[:4] == pytest.approx([0.2, 0.4, 0.6, 0.8])
    assert values[4] == 1.0
    assert all(v > 0 for v in values)  # positive at every step of the run
    assert values[-1] == pytest.approx(0.5 * (1 + math.cos(math.pi * 15 / 16)))


def test_an_unfilled_horizon_fails_loudly_instead_of_decaying_to_zero():
    with pytest.raises(ValueError, match="total_steps=-1"):
        lrs(warmup=3, total=-1, steps=6)


def test_schedule_horizons():
    optimizer = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=1.0)
    assert schedule_horizon(WarmupCosineLR(optimizer, 10, 100)) == 100
    assert schedule_horizon(torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, 7)) == 7
    assert schedule_horizon(torch.optim.lr_scheduler.StepLR(optimizer, 7)) is None


def test_a_schedule_shorter_than_the_run_is_a_warning(tiny_shards, tmp_path):
    args = [
        "fit", "-c", "configs/pretrain/supervised.yaml", "-c", "tests/configs/tiny.yaml",
        f"--data.root={tiny_shards}", f"--trainer.default_root_dir={tmp_path}",
        "--trainer.logger=false", "--trainer.max_epochs=2",
        "--model.init_args.scheduler=lit_mrl.schedules.WarmupCosineLR",
        "--model.init_args.scheduler.warmup_steps=1", "--model.init_args.scheduler.total_steps=2",
    ]  # fmt: skip
    with pytest.warns(UserWarning, match=r"ends after 2 steps but this run has 4"):
        assert main(args) == 0
