"""The old entry points ``python -m data_prep.<dataset>``, kept for one release.

The adapters live in :mod:`data_prep.datasets` now; ``python -m data_prep.gtzan`` prints
one line on stderr saying so and runs ``python -m data_prep.datasets.gtzan`` with the
same arguments. The next release removes these modules.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Sequence


def forward(name: str, argv: Sequence[str] | None = None) -> int:
    """Run ``data_prep.datasets.<name>`` with ``argv`` after a deprecation note; its exit status."""
    print(
        f"python -m data_prep.{name} is deprecated: use python -m data_prep.datasets.{name} "
        "(same flags); the old name goes in the next release",
        file=sys.stderr,
    )
    return importlib.import_module(f"data_prep.datasets.{name}").main(argv)
