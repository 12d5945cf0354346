"""The signals that stop a command: Ctrl-C (SIGINT), SIGTERM (``docker stop``, systemd,
``timeout``) and SIGHUP (the terminal closed). Each ends ``upres`` with 128 + its number
(130, 143, 129), as shells report a process that a signal ended."""

from __future__ import annotations

import signal
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import FrameType

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)

Handler = Callable[[int, FrameType | None], None]


def exit_code(signum: int) -> int:
    """The exit status of a command that ``signum`` stopped."""
    return 128 + signum


@contextmanager
def handling_stop_signals(handler: Handler) -> Iterator[None]:
    """Every stop signal goes to ``handler`` inside the block; the previous handlers after it."""
    previous = {signum: signal.signal(signum, handler) for signum in STOP_SIGNALS}
    try:
        yield
    finally:
        for signum, old in previous.items():
            signal.signal(signum, old)


def _exit_quietly(signum: int, frame: FrameType | None) -> None:
    sys.exit(exit_code(signum))


@contextmanager
def quiet_start() -> Iterator[None]:
    """A stop signal while the command starts (importing torch takes seconds) exits at once,
    without a traceback: nothing has been written yet."""
    with handling_stop_signals(_exit_quietly):
        yield
