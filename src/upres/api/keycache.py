"""Authenticated keys remembered for a few seconds, so that a poll needs no key lookup.

Polling clients send the same key every few seconds; looking it up each time
is a database round trip (and a thread hop) per request. An entry lives
``ttl_s`` and is never used past that, so a revocation made anywhere (the
CLI, another API process) takes effect within ``ttl_s``. Failed lookups are not
remembered: a new key works at once, and a wrong secret always costs a lookup
(the failed-authentication limit is what makes guessing expensive).
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable

from upres.domain.accounts import ApiKey
from upres.services.keys import hash_key


class KeyCache:
    """Keys by the hash of their secret, each for ``ttl_s``; at most ``max_entries``
    (the least recently used go first). ``ttl_s`` 0 remembers nothing. Thread-safe."""

    def __init__(
        self,
        *,
        ttl_s: float,
        max_entries: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._ttl_s = ttl_s
        self._max = max_entries
        self._clock = clock
        self._entries: OrderedDict[str, tuple[ApiKey, float]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, secret: str) -> ApiKey | None:
        """The key remembered for ``secret``, unless it is unknown or stale."""
        digest = hash_key(secret)
        with self._lock:
            found = self._entries.get(digest)
            if found is None:
                return None
            if found[1] <= self._clock():
                del self._entries[digest]
                return None
            self._entries.move_to_end(digest)
            return found[0]

    def put(self, secret: str, key: ApiKey) -> None:
        """Remember ``key``, which was just authenticated with ``secret``."""
        if self._ttl_s <= 0:
            return
        digest = hash_key(secret)
        with self._lock:
            self._entries[digest] = (key, self._clock() + self._ttl_s)
            self._entries.move_to_end(digest)
            while len(self._entries) > self._max:
                self._entries.popitem(last=False)
