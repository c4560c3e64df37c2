"""The probe search space: configs, grids (``small``, ``paper``) and grid YAML files."""

import itertools
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import yaml

from lit_mrl.errors import UsageError


@dataclass(frozen=True)
class ProbeConfig:
    """One probe's hyper-parameters (dropout is 0 for linear probes, which have none)."""

    hidden_dims: tuple[int, ...]
    dropout: float
    weight_decay: float
    lr: float

    def as_dict(self) -> dict[str, Any]:
        """JSON-friendly fields."""
        return {**asdict(self), "hidden_dims": list(self.hidden_dims)}


@dataclass(frozen=True)
class Grid:
    """The search space: every combination of the four axes.

    Linear probes (``hidden_dims == ()``) have no dropout, so they are not repeated per
    dropout value.
    """

    hidden_dims: tuple[tuple[int, ...], ...]
    dropout: tuple[float, ...]
    weight_decay: tuple[float, ...]
    lr: tuple[float, ...]
    name: str = field(default="custom", compare=False)
    extra: tuple[ProbeConfig, ...] = ()

    def configs(self) -> list[ProbeConfig]:
        """The grid's configs, then any ``extra`` ones (grid order breaks selection ties)."""
        configs = []
        for dims in self.hidden_dims:
            dropouts = self.dropout if dims else (0.0,)
            for p, wd, lr in itertools.product(dropouts, self.weight_decay, self.lr):
                configs.append(ProbeConfig(tuple(dims), p, wd, lr))
        return configs + [c for c in self.extra if c not in configs]

    def with_config(self, config: ProbeConfig) -> "Grid":
        """This grid plus one config (e.g. a probe config file's own probe)."""
        if not config.hidden_dims:
            config = ProbeConfig((), 0.0, config.weight_decay, config.lr)  # linear: no dropout
        return replace(self, extra=(*self.extra, config))

    def as_dict(self) -> dict[str, Any]:
        """JSON-friendly axes plus the name."""
        return {
            "name": self.name,
            "hidden_dims": [list(d) for d in self.hidden_dims],
            "dropout": list(self.dropout),
            "weight_decay": list(self.weight_decay),
            "lr": list(self.lr),
            "extra": [c.as_dict() for c in self.extra],
        }


GRIDS = {
    # The range the paper's 90 selected probe configs span (paper-notes section 3.2):
    # 6 shapes x 4 dropouts x 4 L2 x 3 LRs; linear probes skip dropout: 252 configs.
    "paper": Grid(
        hidden_dims=((), (512,), (1024,), (1024, 1024), (2048, 2048), (4096, 4096, 4096)),
        dropout=(0.25, 0.5, 0.75, 0.9),
        weight_decay=(0.0, 1e-6, 1e-5, 1e-4),
        lr=(1e-4, 3e-4, 1e-3),
        name="paper",
    ),
    # The demo's: linear + one hidden layer of 256, 4 + 4 = 8 configs (20 searches in minutes).
    "demo": Grid(
        hidden_dims=((), (256,)),
        dropout=(0.5,),
        weight_decay=(0.0, 1e-4),
        lr=(1e-3, 3e-3),
        name="demo",
    ),
    # CPU default: linear + one hidden layer of 512, 8 + 24 = 32 configs.
    "small": Grid(
        hidden_dims=((), (512,)),
        dropout=(0.25, 0.5, 0.75),
        weight_decay=(0.0, 1e-6, 1e-5, 1e-4),
        lr=(3e-4, 1e-3),
        name="small",
    ),
}


def load_grid(spec: str) -> Grid:
    """A named grid (``small``, ``paper``) or a YAML file with the four axes as lists."""
    if spec in GRIDS:
        return GRIDS[spec]
    path = Path(spec)
    if not path.is_file():
        raise UsageError(f"--grid {spec!r} is neither {sorted(GRIDS)} nor a YAML file")
    axes = yaml.safe_load(path.read_text())
    expected = {"hidden_dims", "dropout", "weight_decay", "lr"}
    if not isinstance(axes, dict) or set(axes) != expected:
        raise UsageError(f"{path} must hold exactly the lists {sorted(expected)}")
    return Grid(
        hidden_dims=tuple(tuple(int(w) for w in dims) for dims in axes["hidden_dims"]),
        dropout=tuple(float(v) for v in axes["dropout"]),
        weight_decay=tuple(float(v) for v in axes["weight_decay"]),
        lr=tuple(float(v) for v in axes["lr"]),
        name=path.stem,
    )
