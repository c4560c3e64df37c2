"""Importing the released MULE weights (McCallum et al. 2022) as a lit_mrl checkpoint.

``python -m lit_mrl import_mule`` (:mod:`lit_mrl.mule.command`); the tensor name map is
:mod:`lit_mrl.mule.mapping`. Nothing here imports mule-torch (GPL-3.0): its file format
is read with ``safetensors`` only. See ``docs/mule.md``.
"""
