"""Run by tests/methods/test_methods.py: one contrastive step, single-process or 2-process DDP.

Usage: python tests/methods/ddp_contrastive.py OUT_FILE DEVICES
Saves the step-0 loss of every rank and the synchronised encoder gradients.
"""

import sys

import lightning as L
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from lit_mrl.methods import ContrastiveModule

PAIRS, SAMPLES = 8, 4000


class LinearEncoder(nn.Module):
    """Batch-independent encoder (no batch norm), so DDP and one process agree."""

    def __init__(self) -> None:
        super().__init__()
        self.embed_dim = 6
        self.proj = nn.Linear(96, 6)

    def forward(self, spec: torch.Tensor) -> torch.Tensor:
        return self.proj(spec.flatten(1, -2).mean(-1))  # (B, 1, 96, T) -> (B, 96) -> (B, 6)


class Pairs(Dataset):
    def __init__(self) -> None:
        gen = torch.Generator().manual_seed(123)
        base = torch.randn(PAIRS, 1, SAMPLES, generator=gen) * 0.1
        self.audio = torch.cat([base, base.roll(400, dims=-1)], dim=1)  # (PAIRS, 2, T)

    def __len__(self) -> int:
        return PAIRS

    def __getitem__(self, i: int) -> dict:
        return {"audio": self.audio[i], "labels": torch.zeros(0), "key": str(i)}


class Recorder(ContrastiveModule):
    def training_step(self, batch, batch_idx):
        loss = super().training_step(batch, batch_idx)
        self.step_loss = loss.detach().clone()
        return loss

    def on_before_optimizer_step(self, optimizer):
        grads = {n: p.grad.clone() for n, p in self.audio_encoder.named_parameters()}
        losses = self.all_gather(self.step_loss)
        if self.global_rank == 0:
            torch.save({"losses": losses.reshape(-1), "grads": grads}, sys.argv[1])


def main() -> None:
    devices = int(sys.argv[2])
    L.seed_everything(0)
    model = Recorder(LinearEncoder(), projection_dim=4, projector_dims=[8], temperature=0.1)
    trainer = L.Trainer(
        accelerator="cpu",
        devices=devices,
        strategy="ddp" if devices > 1 else "auto",
        max_steps=1,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    # DDP gives every rank PAIRS / devices pairs: the global batch is the same.
    loader = DataLoader(Pairs(), batch_size=PAIRS // devices, shuffle=False)
    trainer.fit(model, loader)


if __name__ == "__main__":
    main()
