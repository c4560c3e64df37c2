"""The catalog workflow: trained probe heads as files, labelling a catalog, similar tracks.

``head.py``: the probe head artifact ``probe`` saves (``head/config.json`` +
``head/model.safetensors``) and reads back; ``thresholds.py``: its per-tag decision
thresholds; ``from_probe.py``: what ``probe`` calls to write it. ``label.py``:
``python -m lit_mrl label`` applies heads to an embedding store, a part at a time
(``parts.py``), into one table (``table.py``: its columns). ``neighbours.py``: FAISS
indexes over track embeddings, stored as safetensors + JSON; ``similar.py``:
``python -m lit_mrl similar`` builds, queries and evaluates them.
"""
