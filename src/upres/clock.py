"""Time and lease identity: the clock every component is given, and lease holder ids.

Components take a ``Clock`` in their constructor (tests pass a fake one);
only the composition root and defaults use ``utc_now``.
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


def utc_now() -> datetime:
    """The real clock."""
    return datetime.now(UTC)


def holder_id(role: str) -> str:
    """A lease holder's id, unique across machines, processes and restarts and
    readable in the tables and the log: ``<host>-<pid>-<role>-<random>``."""
    return f"{socket.gethostname()}-{os.getpid()}-{role}-{uuid.uuid4().hex[:6]}"
