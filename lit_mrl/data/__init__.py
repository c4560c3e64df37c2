# The data modules pull in Lightning; load them lazily so the sharder and verify stay light.
__all__ = ["EmbeddingDataModule", "ShardDataModule"]


def __getattr__(name: str) -> object:
    if name == "ShardDataModule":
        from lit_mrl.data.datamodule import ShardDataModule

        return ShardDataModule
    if name == "EmbeddingDataModule":
        from lit_mrl.data.embedding_datamodule import EmbeddingDataModule

        return EmbeddingDataModule
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
