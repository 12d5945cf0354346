"""The claim loop of a worker process: claim a task or a chunk, run it, repeat
until told to stop.

Not the video pipeline (that is ``upres.pipeline``): this loop only decides
what runs next and hands it to a ``Runner``. A pending task comes before a
chunk: starting it is what plans a long task into chunks, and a short task
waits behind no long one's chunks.
"""

from __future__ import annotations

import logging
from typing import Protocol

from upres.domain.chunks import ChunkClaim
from upres.domain.records import Claim
from upres.domain.tasks import Task
from upres.jobs.queue import ChunkQueue, TaskQueue

log = logging.getLogger(__name__)


class Runner(Protocol):
    """Runs one claimed task or chunk to an outcome (``upres.jobs.runner.TaskRunner``)."""

    def run(self, claim: Claim) -> Task | None: ...
    def run_chunk(self, claim: ChunkClaim) -> Task | None: ...


class Queues(TaskQueue, ChunkQueue, Protocol):
    """The two queues a worker takes work from."""


class StopSignal(Protocol):
    """A threading or multiprocessing Event: set when the worker should stop."""

    def is_set(self) -> bool: ...
    def wait(self, timeout: float | None = None) -> bool: ...


class ClaimLoop:
    """Pulls tasks and chunks one at a time; the constructor is its whole configuration."""

    def __init__(
        self,
        *,
        store: Queues,
        runner: Runner,
        worker_id: str,
        lease_s: float,
        poll_s: float = 0.5,
    ) -> None:
        self._store = store
        self._runner = runner
        self._worker_id = worker_id
        self._lease_s = lease_s
        self._poll_s = poll_s

    def run_once(self) -> bool:
        """Claim and run one task, else one chunk. Returns False when both
        queues were empty."""
        claim = self._store.claim(worker_id=self._worker_id, lease_s=self._lease_s)
        if claim is not None:
            log.info(
                "worker %s runs %s (attempt %d)", self._worker_id, claim.task.id, claim.attempt
            )
            self._runner.run(claim)
            return True
        chunk = self._store.claim_chunk(worker_id=self._worker_id, lease_s=self._lease_s)
        if chunk is None:
            return False
        log.info(
            "worker %s runs chunk %d of %s (attempt %d)",
            self._worker_id,
            chunk.chunk.index,
            chunk.task.id,
            chunk.attempt,
        )
        self._runner.run_chunk(chunk)
        return True

    def run_until(self, stop: StopSignal) -> None:
        """Work until ``stop`` is set; a failing poll is logged and retried."""
        while not stop.is_set():
            try:
                worked = self.run_once()
            except Exception:
                log.exception("worker %s could not poll the queue", self._worker_id)
                stop.wait(self._poll_s * 10)
                continue
            if not worked:
                stop.wait(self._poll_s)
