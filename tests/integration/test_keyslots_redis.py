"""The per-key bound on submissions in flight, shared through a real Redis
(``UPRES_TEST_REDIS_URL``, started by .ci/run): two API processes' gates
together allow the bound once, not once each."""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import Iterator

import pytest
import redis

from upres.api.admission import SubmissionGate
from upres.api.keyslots import RedisKeySlots, key_slots
from upres.errors import RateLimited, ServiceUnavailable

REDIS_URL = os.environ.get("UPRES_TEST_REDIS_URL")


@pytest.fixture
def client() -> Iterator[redis.Redis]:
    if REDIS_URL is None:
        pytest.skip("UPRES_TEST_REDIS_URL is not set (.ci/run starts a Redis)")
    connection = redis.Redis.from_url(REDIS_URL)
    connection.flushdb()  # the test Redis is ours alone
    yield connection
    connection.close()


class Clock:
    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now


def test_two_processes_share_one_bound(client: redis.Redis) -> None:
    first, second = RedisKeySlots(client), RedisKeySlots(client)
    one = first.take("key-a", limit=2)
    two = second.take("key-a", limit=2)
    assert one is not None
    assert two is not None
    assert first.take("key-a", limit=2) is None
    assert second.take("key-a", limit=2) is None
    assert second.take("key-b", limit=2) is not None  # another key has its own
    first.give_back("key-a", one)
    assert second.take("key-a", limit=2) is not None


def test_a_slot_of_a_dead_process_lapses(client: redis.Redis) -> None:
    clock = Clock()
    slots = RedisKeySlots(client, hold_s=10, clock=clock)
    assert slots.take("key-a", limit=1) is not None  # its process dies holding it
    assert slots.take("key-a", limit=1) is None
    clock.now += 11
    assert slots.take("key-a", limit=1) is not None


def test_giving_back_twice_or_an_unknown_slot_is_no_error(client: redis.Redis) -> None:
    slots = RedisKeySlots(client)
    token = slots.take("key-a", limit=1)
    assert token is not None
    slots.give_back("key-a", token)
    slots.give_back("key-a", token)
    slots.give_back("key-z", "nothing")
    assert slots.take("key-a", limit=1) is not None


def test_gates_of_two_processes_refuse_the_key_past_the_bound(client: redis.Redis) -> None:
    assert REDIS_URL is not None
    gates = [
        SubmissionGate(threads=2, max_pending=4, max_per_key=1, slots=key_slots(REDIS_URL))
        for _ in range(2)
    ]
    release = threading.Event()

    async def scenario() -> None:
        held = asyncio.ensure_future(gates[0].run("key-a", release.wait))
        await asyncio.sleep(0.05)
        with pytest.raises(RateLimited):
            await gates[1].run("key-a", lambda: True)
        release.set()
        assert await held
        assert await gates[1].run("key-a", lambda: True)

    try:
        asyncio.run(scenario())
    finally:
        for gate in gates:
            gate.close()


def test_an_unreachable_redis_is_service_unavailable() -> None:
    slots = key_slots("redis://127.0.0.1:1/0")
    with pytest.raises(ServiceUnavailable):
        slots.take("key-a", limit=1)
