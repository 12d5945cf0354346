"""The store as the worker side sees it: the queue's roles.

The task table is the queue. A worker claims a task under a lease
(``TaskQueue``), then writes only through fenced calls that name its
``Claim`` (``ClaimedTasks``): a worker whose lease was taken over gets
``LeaseLost`` and changes nothing. A long task's chunks are a second queue
with the same rules (``ChunkQueue``, ``ClaimedChunks``; ``upres.db.chunk_store``).
``SqlTaskStore`` implements every role; ``upres.database.TaskStore`` is their union.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Protocol

from upres.domain.chunks import Chunk, ChunkClaim, Span
from upres.domain.media import VideoCodec
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
        self,
        claim: Claim,
        *,
        progress: int,
        estimated_time_s: int,
        fps: float | None = None,
        frame_mpx: float | None = None,
    ) -> Heartbeat:
        """Renew the lease and record progress and speed (``frame_mpx``: output
        megapixels per frame); ``cancelled`` once the task was cancelled.

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
        result_codec: VideoCodec | None = None,
    ) -> Task:
        """End the task completed with ``notes``, its result written in
        ``result_codec``; capture ``credits_charged`` (at
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

    def record_throughput(self, factor: Factor, network: str, mpix_per_s: float) -> None:
        """Fold one measurement of ``network`` at ``factor`` (output megapixels per
        second) into its moving average."""
        ...


class ChunkQueue(Protocol):
    """Where the claim loop takes its next chunk when no task is pending."""

    def claim_chunk(self, *, worker_id: str, lease_s: float) -> ChunkClaim | None:
        """Lease the next pending chunk of a processing task, fairly between
        tasks (fewest chunks in flight, then oldest), longest first within one."""
        ...


class ClaimedChunks(Protocol):
    """What the runner writes for chunks: the plan of a claimed task, then
    fenced progress and outcome of each claimed chunk."""

    def insert_chunks(self, claim: Claim, spans: Sequence[Span]) -> None:
        """Split the claimed task into pending chunks and release its lease.

        Raises LeaseLost (and changes nothing) when the claim was taken over.
        """
        ...

    def heartbeat_chunk(
        self,
        claim: ChunkClaim,
        *,
        frames_done: int,
        fps: float | None = None,
        frame_mpx: float | None = None,
    ) -> Heartbeat:
        """Renew the chunk's lease and record its frames and speed (``frame_mpx``:
        output megapixels per frame); ``cancelled`` once the task ended.

        Raises LeaseLost when the chunk's lease was taken over.
        """
        ...

    def finish_chunk(self, claim: ChunkClaim, *, part_key: str) -> Claim | None:
        """Record the chunk done; the task's claim, to join it, when it was the last.

        Raises LeaseLost (and changes nothing) when fenced out or the task ended.
        """
        ...

    def fail_chunk(
        self, claim: ChunkClaim, *, error: TaskError, retry: bool, callback_body: CallbackBody
    ) -> Task:
        """Retry the chunk while its attempts remain, else fail its task (refunded).

        Raises LeaseLost (and changes nothing) when fenced out or the task ended.
        """
        ...

    def task_chunks(self, task_id: str) -> list[Chunk]:
        """The task's chunks in order; empty when it was never planned into several."""
        ...

    def forget_chunks(self, task_id: str) -> None:
        """Drop an ended task's chunk rows (their parts are deleted)."""
        ...
