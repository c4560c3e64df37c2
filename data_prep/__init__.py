"""Data preparation: turn audio collections into lit_mrl shards.

- :mod:`data_prep.shard` and :mod:`data_prep.verify`: the sharder's and the checker's
  command lines (``python -m data_prep.shard``, ``python -m data_prep.verify``);
- :mod:`data_prep.core`: the sharder itself, called with a
  :class:`~data_prep.core.options.ShardOptions` and a list of
  :class:`~data_prep.core.rows.InputRow`;
- :mod:`data_prep.datasets`: one adapter per public dataset
  (``python -m data_prep.datasets.gtzan``, ...);
- ``python -m data_prep``: lists the commands; ``python -m data_prep gtzan ...`` runs one.
"""
