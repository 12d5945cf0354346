"""The per-key token bucket, on a controlled clock."""

from __future__ import annotations

import pytest

from upres.api.ratelimit import RateLimiter
from upres.errors import RateLimited


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_bucket_allows_limit_then_refuses_with_wait_time() -> None:
    clock = Clock()
    limiter = RateLimiter(per_minute=3, clock=clock)
    remaining = [limiter.hit("k").remaining for _ in range(3)]
    assert remaining == [2, 1, 0]
    with pytest.raises(RateLimited) as caught:
        limiter.hit("k")
    assert caught.value.limit == 3
    assert caught.value.reset_after_s == pytest.approx(20.0)


def test_bucket_refills_over_time_and_keys_are_independent() -> None:
    clock = Clock()
    limiter = RateLimiter(per_minute=60, clock=clock)
    for _ in range(60):
        limiter.hit("a")
    with pytest.raises(RateLimited):
        limiter.hit("a")
    assert limiter.hit("b").remaining == 59
    clock.now += 1.0
    status = limiter.hit("a")
    assert status.remaining == 0
    assert status.headers() == {
        "X-RateLimit-Limit": "60",
        "X-RateLimit-Remaining": "0",
        "X-RateLimit-Reset": "60",
    }


def test_limit_must_be_positive() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        RateLimiter(per_minute=0)
