"""Pre-training step throughput of each method, in clips/s, on synthetic 3 s audio.

One step = log-mel frontend + encoder + projector + loss + backward + AdamW step, i.e.
a training step without data loading. Contrastive steps process two clips per pair.

Example::

    python -m bench.pretrain_throughput --variant tiny --batch-size 48 --steps 5
    python -m bench.pretrain_throughput --variant full --batch-size 4 --steps 2 --device cuda
"""

import argparse

import torch
import yaml

from bench.encoder_throughput import clips_per_second
from lit_mrl.methods import ContrastiveModule, SupervisedTaggingModule
from lit_mrl.models.sfnfnet import SFNFNetF0

TINY = "configs/encoder/sfnfnet_tiny.yaml"


class _NoTrainer:
    world_size, global_rank = 1, 0


def build(method: str, variant: str) -> torch.nn.Module:
    """A method module around the full or tiny SF-NFNet-F0 (paper projector for full)."""
    args = {}
    if variant == "tiny":
        with open(TINY) as f:
            args = yaml.safe_load(f)["model"]["init_args"]["encoder"]["init_args"]
    encoder = SFNFNetF0(**args)
    dims = [4096, 4096, 4096] if variant == "full" else [256]
    if method == "supervised":
        module = SupervisedTaggingModule(encoder, num_tags=50, projector_dims=dims)
    else:
        module = ContrastiveModule(encoder, projector_dims=dims)
    module._trainer = _NoTrainer()  # bare module: no Trainer, nothing logged
    module.log = lambda *a, **k: None
    return module


def main(argv: list[str] | None = None) -> dict[str, float]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variant", choices=["full", "tiny"], default="tiny")
    parser.add_argument("--batch-size", type=int, default=48, help="tracks (pairs) per step")
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto")
    parser.add_argument("--threads", type=int, default=0, help="CPU threads (0: torch default)")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    auto = "cuda" if torch.cuda.is_available() else "cpu"
    device = torch.device(auto if args.device == "auto" else args.device)
    results = {}
    for method in ("supervised", "contrastive"):
        torch.manual_seed(0)
        module = build(method, args.variant).to(device).train()
        views = 2 if method == "contrastive" else 1
        batch = {
            "audio": 0.1 * torch.randn(args.batch_size, views, 48000, device=device),
            "labels": (torch.rand(args.batch_size, 50, device=device) < 0.1).float(),
        }
        optimizer = torch.optim.AdamW(module.parameters(), lr=1e-4)

        def step(module=module, batch=batch, optimizer=optimizer) -> None:
            loss = module.training_step(batch, 0)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()

        clips = args.batch_size * views
        results[method] = clips_per_second(step, clips, args.steps, args.warmup, device)
        print(f"{method:<12} {args.variant:<5} batch {args.batch_size} x {views} clips: "
              f"{results[method]:.1f} clips/s on {device}")  # fmt: skip
    return results


if __name__ == "__main__":
    main()
