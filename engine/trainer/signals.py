"""SIGTERM / SIGINT ask the training loop to stop cleanly at the end of the current step.

The handler only records the request: the loop finishes the step it is in, saves a checkpoint,
writes ``end`` with status ``stopped`` and the process exits 0. A second SIGINT (an impatient
Ctrl-C) aborts at once without saving.
"""

from __future__ import annotations

import signal
import threading


class StopRequest:
    """Records the first stop signal; the loop polls :attr:`requested` between steps."""

    SIGNALS = (signal.SIGTERM, signal.SIGINT)

    def __init__(self) -> None:
        self.signal_name: str | None = None
        self._previous: dict[int, object] = {}

    def install(self) -> "StopRequest":
        if threading.current_thread() is threading.main_thread():
            for signum in self.SIGNALS:
                self._previous[signum] = signal.signal(signum, self._handle)
        return self

    def uninstall(self) -> None:
        for signum, previous in self._previous.items():
            signal.signal(signum, previous)
        self._previous.clear()

    def _handle(self, signum: int, frame) -> None:
        name = signal.Signals(signum).name
        if self.signal_name is not None and signum == signal.SIGINT:
            raise KeyboardInterrupt(f"second {name}: aborting without a checkpoint")
        self.signal_name = self.signal_name or name

    @property
    def requested(self) -> bool:
        return self.signal_name is not None
