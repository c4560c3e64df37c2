# ShardDataModule pulls in Lightning; load it lazily so the sharder and verify stay light.
__all__ = ["ShardDataModule"]


def __getattr__(name: str) -> object:
    if name == "ShardDataModule":
        from lit_mrl.data.datamodule import ShardDataModule

        return ShardDataModule
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
