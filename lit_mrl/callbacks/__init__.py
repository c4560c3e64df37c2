"""Callbacks: W&B panels (spectrograms, embedding tables) and the online probe."""

from lit_mrl.callbacks.online_probe import OnlineProbe
from lit_mrl.callbacks.panels import EmbeddingTableLogger, SpectrogramLogger

__all__ = ["EmbeddingTableLogger", "OnlineProbe", "SpectrogramLogger"]
