"""Deprecated: ``python -m data_prep.giantsteps`` is ``python -m data_prep.datasets.giantsteps`` (same flags)."""

import sys
from collections.abc import Sequence

from data_prep.deprecated import forward


def main(argv: Sequence[str] | None = None) -> int:
    return forward("giantsteps", argv)


if __name__ == "__main__":
    sys.exit(main())
