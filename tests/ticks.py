"""Fake seconds (``upres.clock.Ticks``) and a fake sleep, for tests of deadlines,
lifetimes and loops: time moves when the test says so, never by waiting."""

from __future__ import annotations

import threading

# A sleeper that has not slept again after this long is stuck, not slow.
STUCK_S = 10.0


class FakeTicks:
    """Seconds that move when told to (``advance``), and by ``step`` after every reading."""

    def __init__(self, start: float = 1_000_000.0, *, step: float = 0.0) -> None:
        self.now = start
        self.step = step

    def __call__(self) -> float:
        now = self.now
        self.now += self.step
        return now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class Beats:
    """A ``sleep`` that returns only when the test calls ``beat``: a loop's turns, one at a time."""

    def __init__(self) -> None:
        self._go = threading.Semaphore(0)
        self._asleep = threading.Semaphore(0)

    def __call__(self, seconds: float) -> None:
        self._asleep.release()
        self._go.acquire()

    def wait_asleep(self) -> None:
        """Until the loop sleeps (again); raises AssertionError if it never does."""
        if not self._asleep.acquire(timeout=STUCK_S):
            raise AssertionError("the loop did not come back to its sleep")

    def beat(self) -> None:
        """Let the loop run one turn, and wait until it sleeps again."""
        self._go.release()
        self.wait_asleep()
