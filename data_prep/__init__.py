"""Data preparation: turn audio collections into lit_mrl shards."""
