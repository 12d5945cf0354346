"""Worker liveness for /healthz when this API process runs no workers itself."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from upres.api.metrics import StatusCounts
from upres.domain.tasks import TaskStatus


class QueueWatch:
    """Worker liveness seen from the queue, for an API process that runs no workers.

    Unhealthy once tasks have waited with none in progress for longer than
    ``grace_s``: a live worker would have claimed one by then.
    """

    def __init__(
        self,
        store: StatusCounts,
        *,
        grace_s: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._store = store
        self._grace_s = grace_s
        self._clock = clock
        self._stalled_since: float | None = None
        self._lock = threading.Lock()

    def __call__(self) -> bool:
        counts = self._store.count_by_status()
        pending = counts.get(TaskStatus.PENDING, 0)
        stalled = pending > 0 and counts.get(TaskStatus.PROCESSING, 0) == 0
        with self._lock:
            if not stalled:
                self._stalled_since = None
                return True
            now = self._clock()
            if self._stalled_since is None:
                self._stalled_since = now
            return now - self._stalled_since <= self._grace_s
