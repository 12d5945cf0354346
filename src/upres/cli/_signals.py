"""The signals that stop a command: Ctrl-C (SIGINT), SIGTERM (``docker stop``, systemd,
``timeout``) and SIGHUP (the terminal closed). Each ends ``upres`` with 128 + its number
(130, 143, 129), as shells report a process that a signal ended."""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import FrameType

from upres.cli._exits import stopped_by

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)

Handler = Callable[[int, FrameType | None], None]


@contextmanager
def handling_stop_signals(handler: Handler) -> Iterator[None]:
    """Every stop signal goes to ``handler`` inside the block; the previous handlers after it."""
    previous = {signum: signal.signal(signum, handler) for signum in STOP_SIGNALS}
    try:
        yield
    finally:
        for signum, old in previous.items():
            signal.signal(signum, old)


class _Deferred:
    """Remembers a stop signal that arrives while the command starts.

    Exiting from inside the handler would raise SystemExit wherever the import
    happens to be, and a library's bare ``except`` there swallows it: the
    command then runs on as if no signal came (seen in CI). So the first signal
    is acted on once the imports are done; a second one leaves at once, since
    nothing has been written yet.
    """

    def __init__(self) -> None:
        self.signum: int | None = None

    def __call__(self, signum: int, frame: FrameType | None) -> None:
        if self.signum is not None:
            os._exit(stopped_by(signum))
        self.signum = signum


@contextmanager
def quiet_start() -> Iterator[None]:
    """A stop signal while the command starts (importing torch takes seconds) exits
    with its status once the block ends, without a traceback: nothing has been
    written yet."""
    deferred = _Deferred()
    with handling_stop_signals(deferred):
        yield
    if deferred.signum is not None:
        sys.exit(stopped_by(deferred.signum))
