"""The sharder: rows and options in, shards, ``info.json`` and ``errors.jsonl`` out.

``shard_rows(rows, ShardOptions(out=...))`` is the whole interface
(:mod:`data_prep.core.sharder`); the modules beside it are its parts: the input types
(``rows``), the command line's inputs (``manifest``), the checks (``inputs``), decoding
(``workers``), resuming (``fingerprint``, ``outdir``) and the shared flags (``flags``).
"""
