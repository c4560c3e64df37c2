"""One adapter per public dataset: ``python -m data_prep.datasets.<name> --help``.

Each reads its dataset's own layout, writes a manifest, ``task.json`` and ``vocab.txt``
beside the shards and hands its rows to the sharder (:mod:`data_prep.datasets.adapter`).
"""

ADAPTERS = (
    "audioset",
    "emomusic",
    "fma",
    "giantsteps",
    "gtzan",
    "jamendo",
    "msd",
    "mtat",
    "nsynth",
    "wds",
)
