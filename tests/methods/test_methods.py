import subprocess
import sys
from pathlib import Path

import pytest
import torch

from lit_mrl.data import ShardDataModule
from lit_mrl.methods import ContrastiveModule, SupervisedTaggingModule
from lit_mrl.models import SmallCNN

ROOT = Path(__file__).resolve().parents[2]


class FakeTrainer:
    world_size, global_rank = 1, 0


def make(method):
    torch.manual_seed(0)
    encoder = SmallCNN(widths=[4, 8])
    if method == "supervised":
        module = SupervisedTaggingModule(encoder, num_tags=3, projector_dims=[16])
    else:
        module = ContrastiveModule(encoder, projection_dim=8, projector_dims=[16])
    module._trainer = FakeTrainer()
    module.log = lambda *a, **k: None  # no Trainer attached: drop logging
    module.log_dict = lambda *a, **k: None
    return module


@pytest.mark.parametrize("method", ["supervised", "contrastive"])
def test_training_step_gives_finite_loss_and_encoder_grads(tiny_shards, method):
    num_views = 2 if method == "contrastive" else 1
    dm = ShardDataModule(str(tiny_shards), batch_size=4, num_workers=0, num_views=num_views)
    batch = next(iter(dm.train_dataloader()))
    module = make(method)
    loss = module.training_step(batch, 0)
    assert torch.isfinite(loss)
    loss.backward()
    for name, param in module.audio_encoder.named_parameters():
        assert param.grad is not None, name
        assert torch.isfinite(param.grad).all(), name
    assert any(p.grad.abs().sum() > 0 for p in module.audio_encoder.parameters())


@pytest.mark.parametrize("method", ["supervised", "contrastive"])
def test_a_few_steps_lower_the_loss(tiny_shards, method):
    num_views = 2 if method == "contrastive" else 1
    dm = ShardDataModule(
        str(tiny_shards), batch_size=8, num_workers=0, num_views=num_views, clip_seconds=0.5
    )
    batch = next(iter(dm.train_dataloader()))
    module = make(method)
    module.train()
    opt = torch.optim.Adam(module.parameters(), lr=1e-2)
    losses = []
    for _ in range(50):
        loss = module.training_step(batch, 0)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.8 * losses[0]


def test_contrastive_refuses_single_view(tiny_shards):
    dm = ShardDataModule(str(tiny_shards), batch_size=4, num_workers=0, num_views=1)
    with pytest.raises(ValueError, match="num_views: 2"):
        make("contrastive").training_step(next(iter(dm.train_dataloader())), 0)


def test_supervised_tag_count_mismatch_names_both():
    module = make("supervised")
    batch = {"audio": torch.zeros(2, 1, 8000), "labels": torch.zeros(2, 5)}
    with pytest.raises(ValueError, match=r"5 tags .* 3"):
        module.training_step(batch, 0)


def run_step(tmp_path, devices):
    out = tmp_path / f"step{devices}.pt"
    cmd = [
        sys.executable,
        str(ROOT / "tests" / "methods" / "ddp_contrastive.py"),
        str(out),
        str(devices),
    ]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return torch.load(out, weights_only=True)


def test_two_process_ddp_equals_one_process_on_the_global_batch(tmp_path):
    """Negatives gathered with gradients: DDP loss and gradients = single-device ones."""
    single, ddp = run_step(tmp_path, 1), run_step(tmp_path, 2)
    assert ddp["losses"].numel() == 2
    assert not torch.allclose(ddp["losses"][0], ddp["losses"][1])  # ranks see different rows
    assert abs(ddp["losses"].mean().item() - single["losses"].item()) < 1e-5
    for name, grad in single["grads"].items():
        torch.testing.assert_close(ddp["grads"][name], grad, rtol=1e-4, atol=1e-6)
