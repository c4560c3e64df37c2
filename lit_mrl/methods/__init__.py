from lit_mrl.methods.base import PretrainModule
from lit_mrl.methods.contrastive import ContrastiveModule
from lit_mrl.methods.supervised import SupervisedTaggingModule

__all__ = ["ContrastiveModule", "PretrainModule", "SupervisedTaggingModule"]
