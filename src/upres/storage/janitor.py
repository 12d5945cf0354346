"""Deletes result files once their links have expired."""

from __future__ import annotations

import logging
import threading
from datetime import datetime
from typing import Protocol

from upres.domain.tasks import Task
from upres.jobs.store import Clock, utc_now
from upres.storage.base import ResultStorage

log = logging.getLogger(__name__)


class ExpiringResults(Protocol):
    """The part of the TaskStore the janitor needs."""

    def expired_results(self, *, now: datetime) -> list[Task]: ...
    def forget_result(self, task_id: str) -> None: ...


class Janitor:
    """Removes expired results: the file first, then the task's reference to it."""

    def __init__(
        self, store: ExpiringResults, storage: ResultStorage, clock: Clock = utc_now
    ) -> None:
        self._store = store
        self._storage = storage
        self._clock = clock

    def run_once(self) -> int:
        """Delete every result past its expiry; return how many were removed."""
        removed = 0
        for task in self._store.expired_results(now=self._clock()):
            if task.result_key is not None:
                self._storage.delete(task.result_key)
            self._store.forget_result(task.id)
            removed += 1
        if removed:
            log.info("janitor removed %d expired results", removed)
        return removed

    def run_forever(self, stop: threading.Event, *, interval_s: float) -> None:
        """Call ``run_once`` every ``interval_s`` until ``stop`` is set (errors are logged)."""
        while not stop.is_set():
            try:
                self.run_once()
            except Exception:  # a background loop must outlive any one failure
                log.exception("janitor pass failed; trying again later")
            stop.wait(interval_s)
