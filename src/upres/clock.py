"""Time and lease identity: the clock every component is given, and lease holder ids.

Components take a ``Clock`` in their constructor (tests pass a fake one);
only the composition root and defaults use ``utc_now``. Deadlines and short
lifetimes count ``Ticks`` instead (``time.monotonic`` by default, a fake in tests).
"""

from __future__ import annotations

import os
import socket
import uuid
from datetime import UTC, datetime
from typing import Protocol


class Clock(Protocol):
    """The current time as an aware UTC datetime (a fake one in tests)."""

    def __call__(self) -> datetime: ...


class Ticks(Protocol):
    """Seconds as a float on a clock of the caller's choice: ``time.monotonic`` for
    deadlines, ``time.time`` where a library stamps wall-clock seconds."""

    def __call__(self) -> float: ...


def utc_now() -> datetime:
    """The real clock."""
    return datetime.now(UTC)


def holder_id(role: str) -> str:
    """A lease holder's id, unique across machines, processes and restarts and
    readable in the tables and the log: ``<host>-<pid>-<role>-<random>``."""
    return f"{socket.gethostname()}-{os.getpid()}-{role}-{uuid.uuid4().hex[:6]}"
