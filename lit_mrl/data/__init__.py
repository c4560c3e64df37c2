"""Lightning data: the shard training stream and cached embeddings as batches.

The formats these read (shards, ``info.json``, embedding stores) are in
:mod:`lit_mrl.formats`, which needs neither torch nor Lightning.
"""

from lit_mrl.data.datamodule import ShardDataModule
from lit_mrl.data.embedding_datamodule import EmbeddingDataModule

__all__ = ["EmbeddingDataModule", "ShardDataModule"]
