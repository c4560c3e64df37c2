"""Ctrl-C that stops a long run at its next safe point, never inside an audio decode."""

from __future__ import annotations

import os
import signal
import threading
from types import FrameType, TracebackType
from typing import Any


class DeferredInterrupt:
    """Turn the first Ctrl-C (SIGINT) into a request that :meth:`check` raises.

    Python raises ``KeyboardInterrupt`` wherever the main thread is when SIGINT arrives.
    Inside soundfile's read callbacks (cffi; used to decode audio held in memory, such as
    a shard's members) the exception is printed as "Exception ignored" and dropped: the
    decode fails, the track is reported corrupt, and the run goes on as if nothing was
    pressed. Deferred, the interrupt is raised by the next :meth:`check` instead (between
    batches or tracks). A second Ctrl-C raises at once, as it did before.

    Installs only in the main thread and only over Python's default handler: a handler
    someone else set (or SIGINT ignored) is left alone. Use as a context manager, or call
    :meth:`install` and :meth:`uninstall`.
    """

    def __init__(self, message: str = "stopping at the next batch") -> None:
        self.message = message
        self.requested = False
        self._previous: Any = None

    def install(self) -> None:
        """Take over SIGINT (no-op off the main thread or over a custom handler)."""
        if threading.current_thread() is not threading.main_thread():
            return
        if signal.getsignal(signal.SIGINT) is not signal.default_int_handler:
            return
        self.requested = False
        self._previous = signal.signal(signal.SIGINT, self._handle)

    def uninstall(self) -> None:
        """Give SIGINT back to the handler it had before :meth:`install`."""
        if self._previous is not None and signal.getsignal(signal.SIGINT) == self._handle:
            signal.signal(signal.SIGINT, self._previous)
        self._previous = None

    def check(self) -> None:
        """Raise ``KeyboardInterrupt`` if Ctrl-C was pressed since the last check.

        Raises:
            KeyboardInterrupt: once per press.
        """
        if self.requested:
            self.requested = False
            raise KeyboardInterrupt

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        self.requested = True
        signal.signal(signal.SIGINT, self._previous)  # a second Ctrl-C stops at once
        # os.write, not print: the handler may run while sys.stderr is mid-write
        os.write(2, f"\nCtrl-C: {self.message} (press again to stop now)\n".encode())

    def __enter__(self) -> DeferredInterrupt:
        self.install()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self.uninstall()
