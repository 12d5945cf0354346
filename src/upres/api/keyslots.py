"""The per-key bound on submissions and uploads in flight, kept where every API
process sees it.

In one process a counter does. With ``UPRES_API_WORKERS=N`` (or several API
machines) each process would allow the bound again, N times it in all; with
``UPRES_REDIS_URL`` set, the slots live in Redis instead, one sorted set per
key whose members are the slots and whose scores are when each is given up
for lost. A process that dies holding slots cannot give them back: they lapse
``SLOT_HOLD_S`` after they were taken, so a crash blocks nobody for long.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from typing import Protocol, cast

import redis
from redis.exceptions import RedisError

from upres.errors import ServiceUnavailable

# Longer than any submission's probe and any upload a client sends at a sane
# speed; a slot still held then belonged to a process that died.
SLOT_HOLD_S = 3600.0
REDIS_PREFIX = "upres:slots:"

# KEYS[1]: the key's set. ARGV: now, lapse time, limit, slot, set lifetime (ms).
_TAKE = """
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[1])
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[3]) then return 0 end
redis.call('ZADD', KEYS[1], ARGV[2], ARGV[4])
redis.call('PEXPIRE', KEYS[1], ARGV[5])
return 1
"""


class KeySlots(Protocol):
    """Slots of a bounded number per key; thread-safe."""

    def take(self, key_id: str, *, limit: int) -> str | None:
        """A new slot of ``key_id``, named by the token returned; None (and
        nothing taken) when ``key_id`` already holds ``limit``.

        Raises ServiceUnavailable when the slots cannot be reached."""
        ...

    def give_back(self, key_id: str, token: str) -> None:
        """Free the slot ``token`` of ``key_id``; a slot already gone is no error."""
        ...


class LocalKeySlots:
    """This process's slots: the bound holds for one API process."""

    def __init__(self) -> None:
        self._held: Counter[str] = Counter()
        self._lock = threading.Lock()

    def take(self, key_id: str, *, limit: int) -> str | None:
        with self._lock:
            if self._held[key_id] >= limit:
                return None
            self._held[key_id] += 1
            return key_id

    def give_back(self, key_id: str, token: str) -> None:
        with self._lock:
            self._held[key_id] -= 1
            if self._held[key_id] <= 0:
                del self._held[key_id]


class RedisKeySlots:
    """Slots in Redis, shared by every API process pointed at it."""

    def __init__(
        self,
        client: redis.Redis,
        *,
        hold_s: float = SLOT_HOLD_S,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._client = client
        self._take = client.register_script(_TAKE)
        self._hold_s = hold_s
        self._clock = clock

    def take(self, key_id: str, *, limit: int) -> str | None:
        token = uuid.uuid4().hex
        now = self._clock()
        arguments: list[float | int | str] = [
            now,
            now + self._hold_s,
            limit,
            token,
            int(self._hold_s * 1000),
        ]
        try:
            taken = self._take(keys=[REDIS_PREFIX + key_id], args=arguments)
        except RedisError as exc:
            raise ServiceUnavailable(f"The submission bounds are unreachable: {exc}") from exc
        return token if cast(int, taken) == 1 else None

    def give_back(self, key_id: str, token: str) -> None:
        try:
            self._client.zrem(REDIS_PREFIX + key_id, token)
        except RedisError as exc:
            raise ServiceUnavailable(f"The submission bounds are unreachable: {exc}") from exc


def key_slots(redis_url: str | None) -> KeySlots:
    """Redis's slots at ``redis_url`` (shared by every process using it), else
    this process's own. Connects lazily, as the rate limits do."""
    if redis_url is None:
        return LocalKeySlots()
    return RedisKeySlots(redis.Redis.from_url(redis_url))
