"""Probes on frozen embeddings: the Lightning ProbeModule and the batched grid search."""

# ProbeModule pulls in Lightning; load it lazily so `probe --help` stays fast.
__all__ = ["ProbeModule"]


def __getattr__(name: str) -> object:
    if name == "ProbeModule":
        from lit_mrl.probe.module import ProbeModule

        return ProbeModule
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
