"""Deprecated: ``python -m data_prep.emomusic`` is ``python -m data_prep.datasets.emomusic`` (same flags)."""

import sys
from collections.abc import Sequence

from data_prep.deprecated import forward


def main(argv: Sequence[str] | None = None) -> int:
    return forward("emomusic", argv)


if __name__ == "__main__":
    sys.exit(main())
