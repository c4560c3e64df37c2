"""Loggers: W&B logs offline unless an account is set up, so no run needs the network.

:func:`default_to_offline` is what every lit_mrl command calls before W&B starts. Runs
also write a CSV log (``configs/trainer.yaml``), which the notebooks read.
"""

from __future__ import annotations

import netrc
import os


def wandb_has_account() -> bool:
    """Whether W&B credentials are configured (env var or ``wandb login``'s netrc)."""
    if os.environ.get("WANDB_API_KEY"):
        return True
    try:
        hosts = netrc.netrc().hosts
    except (FileNotFoundError, netrc.NetrcParseError):
        return False
    return any("wandb" in host for host in hosts)


def default_to_offline() -> None:
    """Set ``WANDB_MODE=offline`` unless it is set or an account is configured.

    A run then never needs the network; ``WANDB_MODE`` given by the user always wins.
    """
    if "WANDB_MODE" not in os.environ and not wandb_has_account():
        os.environ["WANDB_MODE"] = "offline"
