"""Submissions run on threads of their own, behind per-key and total bounds.

A submission probes its input over the network for up to
``UPRES_PROBE_TIMEOUT_S``. The probe has to run on a thread (PyAV demuxes
through synchronous file callbacks), but not on anyio's shared pool: a few
dozen probes of a URL that never answers would hold all of its threads, and
every synchronous dependency of every other route (authentication, reads,
/healthz) would queue behind them. So submissions get a dedicated executor,
awaited without holding any request thread, and admission bounds what may wait
for it: ``max_per_key`` in-flight submissions per key (429
``rate_limit_exceeded``) and ``max_pending`` in all (503), both with
``Retry-After``. The per-key slots are shared by every API process when
Redis is configured (``upres.api.keyslots``); the total bounds this process's
own threads. A submission counts until its thread is done with it, even
when the client has hung up, so disconnecting frees nothing early. An upload
counts the same way from its first byte: a client trickling bodies in holds
its slots, not the server's threads.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import Protocol, TypeVar

from upres.api.keyslots import KeySlots, LocalKeySlots
from upres.errors import RateLimited, ServerBusy, ServiceUnavailable

log = logging.getLogger(__name__)

T = TypeVar("T")


class OnThread(Protocol):
    """Runs one call on the gate's threads (``SubmissionGate.admitted``)."""

    async def __call__(self, call: Callable[[], T], /) -> T: ...


# A probe that will fail takes its whole timeout; a client told to come back
# this much later usually finds a slot without hammering the bound meanwhile.
RETRY_AFTER_S = 5.0


class SubmissionGate:
    """A bounded executor for slow submissions; thread-safe."""

    def __init__(
        self,
        *,
        threads: int,
        max_pending: int,
        max_per_key: int,
        slots: KeySlots | None = None,
    ) -> None:
        if min(threads, max_pending, max_per_key) < 1:
            raise ValueError("threads, max_pending and max_per_key must be at least 1")
        self._executor = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="upres-submit")
        self._max_pending = max_pending
        self._max_per_key = max_per_key
        self._slots = slots if slots is not None else LocalKeySlots()
        self._pending = 0
        self._lock = threading.Lock()

    @property
    def pending(self) -> int:
        """Submissions admitted and not yet done (running or waiting for a thread)."""
        return self._pending

    async def run(self, key_id: str, call: Callable[[], T]) -> T:
        """``call()`` on the gate's threads, for ``key_id``.

        Raises RateLimited when the key already has ``max_per_key`` submissions
        in flight, ServerBusy when ``max_pending`` are; then ``call`` does not run.
        Otherwise returns or raises what ``call`` does.
        """
        with self.admitted(key_id) as on_thread:
            return await on_thread(call)

    @contextmanager
    def admitted(self, key_id: str) -> Iterator[OnThread]:
        """A slot of ``key_id``, held from now: the function it yields runs one call
        on the gate's threads, and the slot is free once that call is done (or at
        the end of the block, when nothing was run).

        Raises RateLimited or ServerBusy as ``run`` does, before the block, and
        ServiceUnavailable when shared slots cannot be reached.
        """
        token = self._admit(key_id)
        handed_over = False

        async def on_thread(call: Callable[[], T]) -> T:
            nonlocal handed_over
            future = self._executor.submit(call)
            handed_over = True
            future.add_done_callback(lambda _: self._release(key_id, token))
            return await asyncio.wrap_future(future)

        try:
            yield on_thread
        finally:
            if not handed_over:
                self._release(key_id, token)

    def close(self) -> None:
        """Stop taking work; submissions not started yet are cancelled."""
        self._executor.shutdown(wait=False, cancel_futures=True)

    def _admit(self, key_id: str) -> str:
        """Take a slot of ``key_id`` and one of this process's; returns the key's slot."""
        token = self._slots.take(key_id, limit=self._max_per_key)
        if token is None:
            raise RateLimited(
                "Too many submissions or uploads in progress for this key"
                f" (at most {self._max_per_key})",
                limit=self._max_per_key,
                reset_after_s=RETRY_AFTER_S,
            )
        with self._lock:
            if self._pending < self._max_pending:
                self._pending += 1
                return token
        self._slots.give_back(key_id, token)
        raise ServerBusy(
            "The server is busy with other submissions, please try again later",
            retry_after_s=RETRY_AFTER_S,
        )

    def _release(self, key_id: str, token: str) -> None:
        with self._lock:
            self._pending -= 1
        try:
            self._slots.give_back(key_id, token)
        except ServiceUnavailable:
            # Redis blinked: the slot lapses by itself (keyslots.SLOT_HOLD_S).
            log.warning("a submission slot of key %s could not be given back", key_id)
