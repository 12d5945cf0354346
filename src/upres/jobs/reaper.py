"""The reaper: puts tasks whose worker stopped beating back in the queue."""

from __future__ import annotations

import logging
import threading
from typing import Protocol

from upres.domain.records import CallbackBody
from upres.domain.tasks import Task

log = logging.getLogger(__name__)


class ExpiredLeases(Protocol):
    """The part of the store the reaper needs."""

    def reap(self, *, callback_body: CallbackBody, max_attempts: int | None = None) -> list[Task]:
        """Requeue tasks whose lease expired, or fail and refund them once
        ``max_attempts`` (default: the store's) is spent. Returns the tasks it touched."""
        ...


class Reaper:
    """Requeues expired leases every pass; the constructor is its whole configuration."""

    def __init__(
        self, store: ExpiredLeases, *, callback_body: CallbackBody, max_attempts: int
    ) -> None:
        self._store = store
        self._callback_body = callback_body
        self._max_attempts = max_attempts

    def run_once(self) -> list[Task]:
        """One pass; returns the tasks it requeued or failed."""
        return self._store.reap(callback_body=self._callback_body, max_attempts=self._max_attempts)

    def run_forever(self, stop: threading.Event, *, interval_s: float) -> None:
        """Call ``run_once`` every ``interval_s`` until ``stop`` is set (errors are logged)."""
        while not stop.wait(interval_s):
            try:
                self.run_once()
            except Exception:  # a background loop must outlive any one failure
                log.exception("reaper pass failed; trying again later")
