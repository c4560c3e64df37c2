from lit_mrl.data.datamodule import ShardDataModule

__all__ = ["ShardDataModule"]
