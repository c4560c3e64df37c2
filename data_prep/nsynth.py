"""Deprecated: ``python -m data_prep.nsynth`` is ``python -m data_prep.datasets.nsynth`` (same flags)."""

import sys
from collections.abc import Sequence

from data_prep.deprecated import forward


def main(argv: Sequence[str] | None = None) -> int:
    return forward("nsynth", argv)


if __name__ == "__main__":
    sys.exit(main())
