"""The store as the worker side sees it: the queue's roles.

The task table is the queue. A worker claims a task under a lease
(``TaskQueue``), then writes only through fenced calls that name its
``Claim`` (``ClaimedTasks``): a worker whose lease was taken over gets
``LeaseLost`` and changes nothing. ``SqlTaskStore`` implements every role;
``upres.store.TaskStore`` is their union.
"""

from __future__ import annotations

from datetime import datetime
from typing import Protocol

from upres.domain.records import CallbackBody, Claim, Heartbeat
from upres.domain.tasks import Factor, Task, TaskError


class TaskQueue(Protocol):
    """Where the claim loop takes its next task."""

    def claim(self, *, worker_id: str, lease_s: float) -> Claim | None:
        """Lease the oldest pending task (attempt + 1), or None when the queue is empty."""
        ...


class ClaimedTasks(Protocol):
    """What the runner of a claimed task writes: fenced progress and outcome,
    and the throughput it measured."""

    def heartbeat(
        self, claim: Claim, *, progress: int, estimated_time_s: int, fps: float | None = None
    ) -> Heartbeat:
        """Renew the lease and record progress; ``cancelled`` once the task was cancelled.

        Raises LeaseLost when the lease was taken over (reaped, re-claimed, ended).
        """
        ...

    def complete(
        self,
        claim: Claim,
        *,
        result_key: str,
        result_expires_at: datetime,
        actual_duration_s: float,
        credits_charged: float,
        callback_body: CallbackBody,
        notes: tuple[str, ...] = (),
    ) -> Task:
        """End the task completed with ``notes``; capture ``credits_charged`` (at
        most the reservation, the rest refunded) and queue its callback, in one
        transaction.

        Raises LeaseLost (and changes nothing) when the lease was taken over.
        """
        ...

    def fail(
        self, claim: Claim, *, error: TaskError, retry: bool, callback_body: CallbackBody
    ) -> Task:
        """Retry puts the task back in the queue while attempts remain; else it
        ends failed with a full refund and a callback.

        Raises LeaseLost (and changes nothing) when the lease was taken over.
        """
        ...

    def record_throughput(self, factor: Factor, mpix_per_s: float) -> None:
        """Fold one measurement (output megapixels per second) into the moving average."""
        ...
