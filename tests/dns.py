"""Name resolution that misbehaves, for tests of time limits."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from upres.inputs.netpolicy import IPAddress

HANG_S = 10.0


class HangingResolver:
    """A resolver like a DNS server that never answers: each lookup blocks (up
    to ``HANG_S``) until ``release``, then fails. Records the names asked."""

    def __init__(self) -> None:
        self.asked: list[str] = []
        self._released = threading.Event()

    def __call__(self, host: str, port: int) -> list[IPAddress]:
        self.asked.append(host)
        self._released.wait(HANG_S)
        raise socket.gaierror(socket.EAI_AGAIN, "Temporary failure in name resolution")

    def release(self) -> None:
        self._released.set()


@contextmanager
def hanging_dns() -> Iterator[HangingResolver]:
    """A HangingResolver, released when the block ends so no lookup outlives the test."""
    resolver = HangingResolver()
    try:
        yield resolver
    finally:
        resolver.release()
