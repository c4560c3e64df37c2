"""Lightning Music Representation Learning."""

__version__ = "0.1.0"
