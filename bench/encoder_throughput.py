"""SF-NFNet-F0 encoder throughput in clips/s (3 s, 96 x 300 log-mel windows).

The encoder runs as everything runs it: :meth:`lit_mrl.models.AudioEncoder.encode` on
standardised log-mel windows (``channels_last`` and ``compile`` are the AudioEncoder's,
i.e. the methods' ``channels_last``/``compile`` options). Two measurements per run, after
``--warmup`` untimed iterations each:

* forward: ``eval()`` + ``torch.no_grad()`` (embedding extraction);
* train step: forward + backward + SGD step (pre-training cost without data loading or
  projector).

Example::

    python -m bench.encoder_throughput --variant full --batch-size 8 --steps 3
    python -m bench.encoder_throughput --variant full --device cuda --batch-size 64 --bf16 --channels-last
"""

import argparse
import time
from collections.abc import Callable

import torch

from lit_mrl.models import AudioEncoder, standardize
from lit_mrl.models.sfnfnet import SFNFNetF0


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variant", choices=["full", "tiny"], default="full")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--steps", type=int, default=10, help="timed iterations")
    parser.add_argument("--warmup", type=int, default=1, help="untimed iterations first")
    parser.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto")
    parser.add_argument("--bf16", action="store_true", help="torch.autocast to bfloat16")
    parser.add_argument("--channels-last", action="store_true")
    parser.add_argument("--compile", action="store_true", help="torch.compile the encoder")
    parser.add_argument("--threads", type=int, default=0, help="CPU threads (0: torch default)")
    parser.add_argument("--skip-train", action="store_true", help="forward only")
    return parser.parse_args(argv)


def clips_per_second(
    step: Callable[[], object], batch_size: int, steps: int, warmup: int, device: torch.device
) -> float:
    """Time ``steps`` calls of ``step`` after ``warmup`` calls; return clips per second."""

    def sync() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    for _ in range(warmup):
        step()
    sync()
    start = time.perf_counter()
    for _ in range(steps):
        step()
    sync()
    return batch_size * steps / (time.perf_counter() - start)


def main(argv: list[str] | None = None) -> dict[str, float]:
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.device == "auto":
        args.device = "cuda" if torch.cuda.is_available() else "cpu"
    device = torch.device(args.device)
    torch.manual_seed(0)
    build = SFNFNetF0 if args.variant == "full" else SFNFNetF0.tiny
    model = AudioEncoder(build(), channels_last=args.channels_last, compile=args.compile)
    model.to(device)
    net = model.encode
    spec = standardize(torch.randn(args.batch_size, 96, 300, device=device))
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=args.bf16)
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-3)

    def forward() -> None:
        with torch.no_grad(), autocast:
            net(spec)

    def train_step() -> None:
        optimizer.zero_grad(set_to_none=True)
        with autocast:
            loss = net(spec).float().square().mean()
        loss.backward()
        optimizer.step()

    timing = {}
    model.eval()
    timing["forward_clips_per_s"] = clips_per_second(
        forward, args.batch_size, args.steps, args.warmup, device
    )
    if not args.skip_train:
        model.train()
        timing["train_clips_per_s"] = clips_per_second(
            train_step, args.batch_size, args.steps, args.warmup, device
        )
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    params = sum(p.numel() for p in model.encoder.parameters())
    print(
        f"{args.variant} SF-NFNet-F0 ({params:,} params) on {name}, {torch.get_num_threads()} threads"
    )
    settings = f"batch {args.batch_size}, bf16 {args.bf16}, channels_last {args.channels_last}, compile {args.compile}"
    print(f"  {settings}")
    for key in ("forward_clips_per_s", "train_clips_per_s"):
        if key in timing:
            print(f"  {key:22s} {timing[key]:10.1f}")
    return timing


if __name__ == "__main__":
    main()
