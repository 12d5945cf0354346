"""Per-key rate limiting: a token bucket refilled continuously, ``per_minute`` deep.

Each API process keeps its own buckets, so N processes allow N times the rate;
the limit protects one process from one noisy key, it is not a billing control.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from upres.errors import RateLimited


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


@dataclass(kw_only=True)
class _Bucket:
    tokens: float
    updated: float


class RateLimiter:
    """Token buckets by key id; thread-safe (sync routes run in a thread pool)."""

    def __init__(self, *, per_minute: int, clock: Callable[[], float] = time.monotonic) -> None:
        if per_minute < 1:
            raise ValueError("per_minute must be at least 1")
        self._limit = per_minute
        self._rate = per_minute / 60.0
        self._clock = clock
        self._buckets: dict[str, _Bucket] = {}
        self._lock = threading.Lock()

    def hit(self, key_id: str) -> RateLimitStatus:
        """Spend one token of ``key_id``'s bucket.

        Raises RateLimited (with the limit and the seconds until a token is back)
        when the bucket is empty.
        """
        with self._lock:
            bucket = self._refilled(key_id)
            if bucket.tokens < 1.0:
                wait_s = (1.0 - bucket.tokens) / self._rate
                raise RateLimited(
                    "Too many requests, please try again later",
                    limit=self._limit,
                    reset_after_s=wait_s,
                )
            bucket.tokens -= 1.0
            return RateLimitStatus(
                limit=self._limit,
                remaining=math.floor(bucket.tokens),
                reset_after_s=(self._limit - bucket.tokens) / self._rate,
            )

    def _refilled(self, key_id: str) -> _Bucket:
        now = self._clock()
        bucket = self._buckets.setdefault(key_id, _Bucket(tokens=self._limit, updated=now))
        bucket.tokens = min(self._limit, bucket.tokens + (now - bucket.updated) * self._rate)
        bucket.updated = now
        return bucket
