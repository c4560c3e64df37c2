"""Embedding extraction: window maths, the batched extractor, input sources, the command."""
