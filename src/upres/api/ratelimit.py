"""Rate limits with the ``limits`` library: a moving window of ``limit`` hits per ``window_s``.

Counted in this process by default; with ``UPRES_REDIS_URL`` in Redis, so that
every API process and replica draws on one budget per key. Two budgets use it:
requests per key, and failed authentications per client address (key guessing
costs something, and an address that spent its budget is refused outright, so
it learns nothing more until the window passes).
"""

from __future__ import annotations

import functools
import math
import threading
import time
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from limits import RateLimitItem, RateLimitItemPerSecond
from limits.errors import StorageError
from limits.storage import MemoryStorage, MovingWindowSupport, Storage, storage_from_string
from starlette.concurrency import run_in_threadpool

from upres.clock import Ticks
from upres.errors import RateLimited, ServiceUnavailable

# Redis keys of upres, apart from anything else in the same database.
REDIS_KEY_PREFIX = "upres"
# Names (key ids, addresses) whose storage keys are remembered, the most recent first.
_REMEMBERED_NAMES = 65_536
T = TypeVar("T")


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


class SweptMemoryStorage(MemoryStorage):
    """``limits``' memory storage, its expired entries swept by one long-lived thread.

    The stock storage starts a new timer thread 10 ms after each hit once the
    previous one ended: under steady load, a thread start every request or two,
    measured as most of a cached read's CPU (docs/BENCHMARKS.md). Here one
    daemon thread sweeps every ``sweep_s`` (waiting with ``sleep``), and ends once
    the storage is gone. Both hooks are name-mangled privates of ``limits``:
    tests/unit/test_api_ratelimit.py fails if an upgrade renames them.
    """

    def __init__(
        self, *, sweep_s: float = 1.0, sleep: Callable[[float], None] = time.sleep
    ) -> None:
        super().__init__()
        reference = weakref.ref(self)
        threading.Thread(
            target=_sweep_while_alive, args=(reference, sweep_s, sleep), daemon=True
        ).start()

    def _MemoryStorage__schedule_expiry(self) -> None:  # noqa: N802 (the base's private hook)
        return

    def sweep(self) -> None:
        """Drop every entry whose window has passed."""
        self._MemoryStorage__expire_events()  # type: ignore[attr-defined]


def _sweep_while_alive(
    reference: weakref.ref[SweptMemoryStorage], sweep_s: float, sleep: Callable[[float], None]
) -> None:
    while True:
        sleep(sweep_s)
        storage = reference()
        if storage is None:
            return
        storage.sweep()
        del storage


def limit_storage(redis_url: str | None) -> Storage:
    """Redis at ``redis_url`` (shared by every process using it), else this process's memory.

    Connects lazily: an unreachable Redis shows on the first hit, as ServiceUnavailable.
    """
    if redis_url is None:
        return SweptMemoryStorage()
    storage = storage_from_string(redis_url, key_prefix=REDIS_KEY_PREFIX, wrap_exceptions=True)
    assert isinstance(storage, Storage)
    return storage


class RateLimiter:
    """One budget of ``limit`` hits per ``window_s`` for each name (a key id, an address).

    The moving window of ``limits``' MovingWindowRateLimiter, on the storage's
    own moving-window operations: a name's storage key is built once and
    remembered (building it is most of a hit's cost), and a check reads the
    window once. ``clock`` must be the one the storage stamps its hits with (the
    wall clock, for ``limits``' storages).
    """

    def __init__(
        self,
        *,
        limit: int,
        window_s: int,
        storage: Storage,
        namespace: str,
        clock: Ticks = time.time,
    ) -> None:
        if limit < 1 or window_s < 1:
            raise ValueError("limit and window_s must be at least 1")
        if not isinstance(storage, MovingWindowSupport):
            raise TypeError(f"{type(storage).__name__} keeps no moving windows")
        item: RateLimitItem = RateLimitItemPerSecond(limit, window_s, namespace=namespace)
        self._limit, self._expiry = item.amount, item.get_expiry()
        self._windows: MovingWindowSupport = storage
        self._key_of = functools.lru_cache(maxsize=_REMEMBERED_NAMES)(item.key_for)
        # A remote storage is network I/O: it must not run on the event loop.
        self._remote = not isinstance(storage, MemoryStorage)
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
