"""Rate limits: the moving window per name, in memory, and failed authentications
per client address through the real app.

The tests that need a window to pass give the memory windows and the
RateLimiter the same fake clock.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from tests.ticks import Beats, FakeTicks
from tests.unit.api_harness import running_api
from upres.api.ratelimit import MemoryWindows, RateLimiter, limit_storage
from upres.clock import Ticks
from upres.errors import RateLimited, ServiceUnavailable


def _limiter(limit: int, window_s: int = 60, clock: Ticks = time.time) -> RateLimiter:
    storage = MemoryWindows(clock=clock)
    return RateLimiter(limit=limit, window_s=window_s, storage=storage, namespace="t", clock=clock)


@pytest.fixture
def wall_clock() -> FakeTicks:
    return FakeTicks()


def test_a_budget_allows_its_limit_then_refuses_with_the_wait() -> None:
    async def scenario() -> None:
        limiter = _limiter(3)
        remaining = [(await limiter.hit("k")).remaining for _ in range(3)]
        assert remaining == [2, 1, 0]
        assert await limiter.exhausted("k") is not None
        with pytest.raises(RateLimited) as caught:
            await limiter.hit("k")
        assert caught.value.limit == 3
        assert 1 <= caught.value.reset_after_s <= 60
        assert (await limiter.hit("other")).remaining == 2

    asyncio.run(scenario())


def test_a_budget_comes_back_once_the_window_has_passed(wall_clock: FakeTicks) -> None:
    async def scenario() -> None:
        limiter = _limiter(2, window_s=1, clock=wall_clock)
        await limiter.hit("k")
        status = await limiter.hit("k")
        assert status.headers()["X-RateLimit-Remaining"] == "0"
        assert status.reset_after_s == 1.0
        wall_clock.advance(0.9)
        assert await limiter.exhausted("k") is not None
        wall_clock.advance(0.2)
        assert await limiter.exhausted("k") is None
        assert (await limiter.hit("k")).remaining == 1

    asyncio.run(scenario())


def test_an_unreachable_redis_is_503_not_a_crash() -> None:
    async def scenario() -> None:
        storage = limit_storage("redis://127.0.0.1:1/0")
        limiter = RateLimiter(limit=5, window_s=60, storage=storage, namespace="t")
        with pytest.raises(ServiceUnavailable):
            await limiter.hit("k")

    asyncio.run(scenario())


def test_limits_must_be_positive() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        _limiter(0)


def test_failed_authentications_are_limited_per_address(tmp_path: Path) -> None:
    with running_api(tmp_path) as api:
        with api.client("upres_wrong") as guessing:
            statuses = [guessing.get("/v1/credits").status_code for _ in range(22)]
        with api.client() as owner:
            refused = owner.get("/v1/credits")
        with api.client("") as anonymous:
            missing = [anonymous.get("/v1/credits").status_code for _ in range(3)]
    # 20 guesses a minute (the default); then even a right key from that address
    # waits, so guessing learns nothing more until the window passes.
    assert statuses == [401] * 20 + [429] * 2
    assert refused.status_code == 429
    assert refused.json()["error"]["code"] == "rate_limit_exceeded"
    assert int(refused.headers["Retry-After"]) >= 1
    assert missing == [401] * 3


def test_the_per_key_limit_answers_429_with_headers(tmp_path: Path) -> None:
    with running_api(tmp_path, rate_limit_per_minute=3) as api, api.client() as client:
        answers = [client.get("/v1/credits") for _ in range(4)]
    assert [a.status_code for a in answers] == [200, 200, 200, 429]
    assert answers[0].headers["X-RateLimit-Remaining"] == "2"
    assert answers[3].headers["X-RateLimit-Limit"] == "3"
    assert int(answers[3].headers["Retry-After"]) >= 1


def test_the_memory_windows_are_what_the_app_counts_in_without_redis() -> None:
    assert isinstance(limit_storage(None), MemoryWindows)


def test_a_window_keeps_its_hits_in_order_and_drops_only_the_passed(
    wall_clock: FakeTicks,
) -> None:
    windows = MemoryWindows(clock=wall_clock, sleep=Beats())
    for wait in (4, 4, 0):
        assert windows.acquire_entry("k", 3, 10)
        wall_clock.advance(wait)
    # Hits at 0, 4 and 8 s: the limit holds while all three are within 10 s.
    assert not windows.acquire_entry("k", 3, 10)
    assert windows.get_moving_window("k", 3, 10) == (wall_clock() - 8, 3)
    wall_clock.advance(2)  # 10 s: the hit at 0 s is exactly a window old and still counts
    assert windows.get_moving_window("k", 3, 10) == (wall_clock() - 10, 3)
    assert not windows.acquire_entry("k", 3, 10)
    wall_clock.advance(0.5)  # 10.5 s: it has passed
    assert windows.get_moving_window("k", 3, 10) == (wall_clock() - 6.5, 2)
    assert windows.acquire_entry("k", 3, 10)
    assert not windows.acquire_entry("k", 3, 10, amount=2)
    assert windows.get_moving_window("other", 3, 10) == (wall_clock(), 0)


def test_the_sweeping_thread_forgets_the_windows_that_passed(wall_clock: FakeTicks) -> None:
    async def scenario() -> None:
        beats = Beats()
        windows = MemoryWindows(clock=wall_clock, sweep_s=1.0, sleep=beats)
        beats.wait_asleep()
        limiter = RateLimiter(
            limit=100, window_s=1, storage=windows, namespace="t", clock=wall_clock
        )
        for name in ("a", "b"):
            for _ in range(20):
                await limiter.hit(name)
        beats.beat()  # a sweep inside the window keeps every name
        assert windows.names() == 2
        wall_clock.advance(0.6)
        await limiter.hit("b")
        wall_clock.advance(0.6)  # a's hits passed; b's last one is 0.6 s old
        beats.beat()
        assert windows.names() == 1
        assert (await limiter.hit("a")).remaining == 99
        assert (await limiter.hit("b")).remaining == 98

    asyncio.run(scenario())
