"""Deprecated: ``python -m data_prep.mtat`` is ``python -m data_prep.datasets.mtat`` (same flags)."""

import sys
from collections.abc import Sequence

from data_prep.deprecated import forward


def main(argv: Sequence[str] | None = None) -> int:
    return forward("mtat", argv)


if __name__ == "__main__":
    sys.exit(main())
