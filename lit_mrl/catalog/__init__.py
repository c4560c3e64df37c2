"""The catalog workflow: trained probe heads as files, labelling a catalog, similar tracks.

``head.py``: the probe head artifact ``probe`` saves (``head/config.json`` +
``head/model.safetensors``) and reads back; ``thresholds.py``: its per-tag decision
thresholds; ``from_probe.py``: what ``probe`` calls to write it.
"""
