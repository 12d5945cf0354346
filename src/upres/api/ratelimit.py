"""Rate limits with the ``limits`` library: a moving window of ``limit`` hits per ``window_s``.

Counted in this process by default; with ``UPRES_REDIS_URL`` in Redis, so that
every API process and replica draws on one budget per key. Two budgets use it:
requests per key, and failed authentications per client address (key guessing
costs something, and an address that spent its budget is refused outright, so
it learns nothing more until the window passes).
"""

from __future__ import annotations

import functools
import itertools
import logging
import math
import threading
import time
import weakref
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol, TypeVar

from limits import RateLimitItem, RateLimitItemPerSecond
from limits.errors import StorageError
from limits.storage import MovingWindowSupport, storage_from_string
from starlette.concurrency import run_in_threadpool

from upres.clock import Ticks
from upres.errors import ConfigError, RateLimited, ServiceUnavailable

# Redis keys of upres, apart from anything else in the same database.
REDIS_KEY_PREFIX = "upres"
# Names (key ids, addresses) whose storage keys are remembered, the most recent first.
_REMEMBERED_NAMES = 65_536
T = TypeVar("T")
log = logging.getLogger(__name__)


@dataclass(frozen=True, kw_only=True)
class RateLimitStatus:
    """What the X-RateLimit-* headers report after one request."""

    limit: int
    remaining: int
    reset_after_s: float

    def headers(self) -> dict[str, str]:
        return {
            "X-RateLimit-Limit": str(self.limit),
            "X-RateLimit-Remaining": str(self.remaining),
            "X-RateLimit-Reset": str(math.ceil(self.reset_after_s)),
        }


class Windows(Protocol):
    """The two moving-window operations a budget needs (``limits``' own names and
    meaning, so that its Redis storage serves as is)."""

    def acquire_entry(self, key: str, limit: int, expiry: int, amount: int = 1) -> bool:
        """Record ``amount`` hits now, unless that would pass ``limit`` within ``expiry`` s."""
        ...

    def get_moving_window(self, key: str, limit: int, expiry: int) -> tuple[float, int]:
        """The oldest hit within ``expiry`` s (now when none), and how many there are."""
        ...


class MemoryWindows:
    """Moving windows in this process's memory: each name's hit times, oldest first.

    ``limits``' memory storage keeps a window newest first and inserts each hit
    at the front, so a hit moves every hit of the window: at a generous limit
    (the API bench's 4,500 polls a second) megabytes per request, most of a
    cached poll's cost (docs/BENCHMARKS.md). Here a hit is appended and the hits
    that passed leave from the front: constant time, and plain floats the
    garbage collector never tracks. A hit exactly ``expiry`` old still counts,
    as in ``limits``' Redis storage. One daemon thread forgets, every ``sweep_s``
    (waiting with ``sleep``), the names whose window has passed, and ends once
    the windows are gone. Hits are stamped with ``clock``. Thread-safe.
    """

    def __init__(
        self,
        *,
        clock: Ticks = time.time,
        sweep_s: float = 1.0,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._windows: dict[str, _Window] = {}
        reference = weakref.ref(self)
        threading.Thread(
            target=_sweep_while_alive,
            args=(reference, sweep_s, sleep),
            name="rate-limit sweeper",
            daemon=True,
        ).start()

    def acquire_entry(self, key: str, limit: int, expiry: int, amount: int = 1) -> bool:
        now = self._clock()
        with self._lock:
            window = self._windows.get(key)
            if window is None:
                window = self._windows[key] = _Window(expiry_s=expiry)
            hits = window.current(now)
            if len(hits) + amount > limit:
                return False
            hits.extend(itertools.repeat(now, amount))
            return True

    def get_moving_window(self, key: str, limit: int, expiry: int) -> tuple[float, int]:
        now = self._clock()
        with self._lock:
            window = self._windows.get(key)
            hits = window.current(now) if window is not None else None
            return (hits[0], len(hits)) if hits else (now, 0)

    def names(self) -> int:
        """How many names have a window in memory."""
        return len(self._windows)

    def sweep(self) -> None:
        """Forget every name whose window has passed."""
        now = self._clock()
        with self._lock:
            windows = list(self._windows.items())
        for key, window in windows:
            with self._lock:
                if not window.current(now) and self._windows.get(key) is window:
                    del self._windows[key]


class _Window:
    """One name's hits (times, oldest first) within the last ``expiry_s``."""

    def __init__(self, *, expiry_s: float) -> None:
        self._expiry_s = expiry_s
        self._hits: deque[float] = deque()

    def current(self, now: float) -> deque[float]:
        """The hits still within the window at ``now``, the older ones dropped."""
        hits, oldest_kept = self._hits, now - self._expiry_s
        while hits and hits[0] < oldest_kept:
            hits.popleft()
        return hits


def _sweep_while_alive(
    reference: weakref.ref[MemoryWindows], sweep_s: float, sleep: Callable[[float], None]
) -> None:
    while True:
        sleep(sweep_s)
        windows = reference()
        if windows is None:
            return
        try:
            windows.sweep()
        except Exception:
            # The thread is what bounds the windows' memory: it must outlive a bad sweep.
            log.exception("sweeping the rate-limit windows failed")
        del windows


def limit_storage(redis_url: str | None) -> Windows:
    """Redis at ``redis_url`` (shared by every process using it), else this process's memory.

    Connects lazily: an unreachable Redis shows on the first hit, as ServiceUnavailable.
    Raises ConfigError when the URL names a storage that keeps no moving windows.
    """
    if redis_url is None:
        return MemoryWindows()
    storage = storage_from_string(redis_url, key_prefix=REDIS_KEY_PREFIX, wrap_exceptions=True)
    if not isinstance(storage, MovingWindowSupport):
        raise ConfigError(f"UPRES_REDIS_URL names a {type(storage).__name__}, not Redis")
    return storage


class RateLimiter:
    """One budget of ``limit`` hits per ``window_s`` for each name (a key id, an address).

    The moving window of ``limits``' MovingWindowRateLimiter, on the storage's
    own moving-window operations: a name's storage key is built once and
    remembered (building it is most of a hit's cost), and a check reads the
    window once. ``clock`` must be the one the storage stamps its hits with (the
    wall clock, unless a test gives both the same fake).
    """

    def __init__(
        self,
        *,
        limit: int,
        window_s: int,
        storage: Windows,
        namespace: str,
        clock: Ticks = time.time,
    ) -> None:
        if limit < 1 or window_s < 1:
            raise ValueError("limit and window_s must be at least 1")
        item: RateLimitItem = RateLimitItemPerSecond(limit, window_s, namespace=namespace)
        self._limit, self._expiry = item.amount, item.get_expiry()
        self._windows = storage
        self._key_of = functools.lru_cache(maxsize=_REMEMBERED_NAMES)(item.key_for)
        # A remote storage is network I/O: it must not run on the event loop.
        self._remote = not isinstance(storage, MemoryWindows)
        self._clock = clock

    async def hit(self, name: str) -> RateLimitStatus:
        """Spend one hit of ``name``'s budget.

        Raises RateLimited (with the seconds until a hit is back) when the budget
        is spent, ServiceUnavailable when the shared storage does not answer.
        """
        return await self._call(self._hit, name)

    async def exhausted(self, name: str) -> RateLimitStatus | None:
        """The status of ``name``'s budget when it is spent, else None; spends nothing.

        Raises ServiceUnavailable when the shared storage does not answer.
        """
        return await self._call(self._exhausted, name)

    async def _call(self, work: Callable[[str], T], name: str) -> T:
        try:
            return await run_in_threadpool(work, name) if self._remote else work(name)
        except StorageError as exc:
            raise ServiceUnavailable("The rate limit store does not answer") from exc

    def _hit(self, name: str) -> RateLimitStatus:
        key = self._key_of(name)
        allowed = self._windows.acquire_entry(key, self._limit, self._expiry)
        status = self._status(key)
        if not allowed:
            raise self.refusal(status, "Too many requests, please try again later")
        return status

    def _exhausted(self, name: str) -> RateLimitStatus | None:
        status = self._status(self._key_of(name))
        return status if status.remaining <= 0 else None

    def _status(self, key: str) -> RateLimitStatus:
        window_start, hits = self._windows.get_moving_window(key, self._limit, self._expiry)
        return RateLimitStatus(
            limit=self._limit,
            remaining=max(0, self._limit - hits),
            reset_after_s=max(0.0, window_start + self._expiry - self._clock()),
        )

    @staticmethod
    def refusal(status: RateLimitStatus, message: str) -> RateLimited:
        """The error for a spent budget, with its limit and wait."""
        return RateLimited(
            message, limit=status.limit, reset_after_s=max(1.0, status.reset_after_s)
        )
