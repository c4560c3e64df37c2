"""Deprecated: ``python -m data_prep.gtzan`` is ``python -m data_prep.datasets.gtzan`` (same flags)."""

import sys
from collections.abc import Sequence

from data_prep.deprecated import forward


def main(argv: Sequence[str] | None = None) -> int:
    return forward("gtzan", argv)


if __name__ == "__main__":
    sys.exit(main())
