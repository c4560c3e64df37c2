import math

import torch
import torch.nn.functional as F

from lit_mrl.losses import nt_xent_loss


def reference_nt_xent(z1, z2, temperature):
    """SimCLR's loss written out example by example, straight from the paper."""
    z = F.normalize(torch.cat([z1, z2]), dim=1)
    n = z1.shape[0]
    total = 0.0
    for i in range(2 * n):
        j = (i + n) % (2 * n)
        sims = [math.exp(float(z[i] @ z[k]) / temperature) for k in range(2 * n) if k != i]
        total += -math.log(math.exp(float(z[i] @ z[j]) / temperature) / sum(sims))
    return total / (2 * n)


def test_matches_reference_implementation():
    torch.manual_seed(0)
    z1, z2 = torch.randn(6, 5), torch.randn(6, 5)
    for temperature in (0.1, 0.5):
        ours = nt_xent_loss(z1, z2, temperature)
        assert abs(ours.item() - reference_nt_xent(z1, z2, temperature)) < 1e-5


def test_aligned_pairs_score_lower_than_shuffled():
    torch.manual_seed(0)
    z1 = torch.randn(32, 16)
    z2 = z1 + 0.1 * torch.randn(32, 16)
    assert nt_xent_loss(z1, z2) < nt_xent_loss(z1, z2[torch.randperm(32)])


def test_symmetric_in_the_views():
    torch.manual_seed(0)
    z1, z2 = torch.randn(8, 4), torch.randn(8, 4)
    torch.testing.assert_close(nt_xent_loss(z1, z2), nt_xent_loss(z2, z1))


def test_gathered_shards_average_to_the_global_loss():
    """Per-device losses on gathered negatives average to the single-device loss."""
    torch.manual_seed(0)
    z1, z2 = torch.randn(8, 4), torch.randn(8, 4)
    per_rank = [
        nt_xent_loss(z1[r * 4 : (r + 1) * 4], z2[r * 4 : (r + 1) * 4], 0.1, (z1, z2), rank=r)
        for r in range(2)
    ]
    torch.testing.assert_close(sum(per_rank) / 2, nt_xent_loss(z1, z2, 0.1))


def test_decreases_under_sgd():
    torch.manual_seed(0)
    x1 = torch.randn(16, 8)
    x2 = x1 + 0.3 * torch.randn(16, 8)
    proj = torch.nn.Linear(8, 8)
    opt = torch.optim.SGD(proj.parameters(), lr=0.5)
    losses = []
    for _ in range(20):
        loss = nt_xent_loss(proj(x1), proj(x2))
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0] - 0.1
