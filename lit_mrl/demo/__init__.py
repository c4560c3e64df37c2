"""The offline demo: its music corpus and the run through every step of lit_mrl."""
