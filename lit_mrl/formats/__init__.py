"""On-disk formats, torch-free: audio decoding, shards, dataset info, embedding stores, files.

The one package ``data_prep`` imports from lit_mrl (with :mod:`lit_mrl.errors`): nothing
here imports torch or Lightning, so preparing data stays light.
"""
