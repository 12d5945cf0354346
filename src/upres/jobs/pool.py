"""What the worker pools share: their surface, one worker's entry, and restarts.

``Supervisor`` (processes on this machine) and ``RayPool`` (actors on a Ray
cluster) run a ``WorkerEntry`` once per slot and start a slot again when its
worker ends while the pool runs. Either way the database stays the queue: a
worker that dies takes its task's lease with it, and the reaper requeues it.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Protocol

from upres.jobs.claim_loop import StopSignal

log = logging.getLogger(__name__)


class WorkerPool(Protocol):
    """Keeps ``worker_concurrency`` workers running between ``start`` and ``stop``."""

    def start(self) -> None: ...

    def alive(self) -> bool:
        """True while at least one worker runs (feeds /healthz)."""
        ...

    def stop(self, *, grace_s: float = 5.0) -> None:
        """Ask workers to stop, wait ``grace_s``, then end the rest."""
        ...


WorkerEntry = Callable[[str, int, StopSignal], None]
"""The body of one worker, in its own process or actor (``upres.worker_entry.run_worker``):
build everything from the settings (``Settings.model_dump_json``) for slot
``slot``, then work until the stop signal is set. A module-level function: it
travels to a spawned process or a Ray actor by reference."""


class Restarter:
    """Every ``check_s`` until ``stop``, calls ``restart(slot)`` for each slot
    that ``ended()`` names. A failing check or restart is logged and tried
    again at the next check."""

    def __init__(
        self,
        *,
        ended: Callable[[], list[int]],
        restart: Callable[[int], None],
        what: str,
        check_s: float,
    ) -> None:
        self._ended = ended
        self._restart = restart
        self._what = what
        self._check_s = check_s
        self._halt = threading.Event()
        self._thread = threading.Thread(target=self._watch, name=f"{what} watcher", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        """Returns once no restart is in progress; none starts after."""
        self._halt.set()
        if self._thread.is_alive():
            self._thread.join()

    def _watch(self) -> None:
        while not self._halt.wait(self._check_s):
            try:
                self._restart_ended()
            except Exception:
                log.exception("could not restart a %s; trying again", self._what)

    def _restart_ended(self) -> None:
        for slot in self._ended():
            log.warning("%s %d ended; starting a new one", self._what, slot)
            self._restart(slot)
