"""Chunks on the SQL database: the chunk table is a second queue beside the task table.

A task planned into chunks keeps its row (processing, with no lease) while
its chunks are claimed, leased, fenced and reaped as tasks are: a claim takes
one pending chunk of a processing task (``FOR UPDATE SKIP LOCKED`` on
PostgreSQL, ``BEGIN IMMEDIATE`` on SQLite), preferring the task with the fewest
chunks in flight, then the oldest task, then the longest chunk. Every chunk
write locks the task row first, then the chunk row (one lock order, so writers
never deadlock; and two workers finishing a task's last two chunks at once
see each other's, so exactly one of them becomes the finaliser).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime

from sqlalchemy import delete, exists, func, select
from sqlalchemy.orm import Session

from upres.clock import Clock
from upres.db import chunk_rows, convert, task_rows
from upres.db.settle import fail_task
from upres.db.tables import ChunkRow, TaskRow
from upres.db.unit import Database
from upres.domain.chunks import Chunk, ChunkClaim, ChunkStatus, Span
from upres.domain.records import CallbackBody, Claim, Heartbeat
from upres.domain.tasks import Task, TaskError, TaskStatus
from upres.errors import LeaseLost

_ENDED = (TaskStatus.COMPLETED, TaskStatus.FAILED, TaskStatus.CANCELLED)


class SqlChunks:
    """The chunks of every chunked task (a part of ``SqlTaskStore``)."""

    _db: Database
    _clock: Clock
    _max_attempts: int

    def insert_chunks(self, claim: Claim, spans: Sequence[Span]) -> None:
        """Split the claimed task into ``spans`` (pending chunks) and release its
        lease: from now on its chunks carry leases. A task planned before (a
        finaliser's claim that found chunks still to run) keeps its chunks.

        Raises LeaseLost (and changes nothing) when the claim was taken over.
        """
        with self._db.write() as session:
            row = session.get(TaskRow, claim.task.id, with_for_update=True)
            row = task_rows.fenced(row, claim)
            now = self._clock()
            if not has_chunks(session, row.id):
                session.add_all(chunk_rows.new_rows(row.id, spans, now))
            task_rows.hand_to_chunks(row, now)

    def claim_chunk(self, *, worker_id: str, lease_s: float) -> ChunkClaim | None:
        """Lease the next pending chunk of a processing task (attempt + 1), or None."""
        now = self._clock()
        query = (
            select(ChunkRow, TaskRow)
            .join(TaskRow, TaskRow.id == ChunkRow.task_id)
            .where(chunk_rows.claimable(now), TaskRow.status == TaskStatus.PROCESSING)
            .order_by(
                chunk_rows.in_flight(),
                TaskRow.created_at,
                TaskRow.id,
                ChunkRow.frame_count.desc(),
                ChunkRow.index,
            )
            .limit(1)
            .with_for_update(skip_locked=True, of=ChunkRow)
        )
        with self._db.write() as session:
            found = session.execute(query).first()
            if found is None:
                return None
            row, task = found
            claim = chunk_rows.start(
                row, convert.task(task), worker_id=worker_id, lease_s=lease_s, now=now
            )
            session.flush()
            return claim

    def heartbeat_chunk(
        self,
        claim: ChunkClaim,
        *,
        frames_done: int,
        fps: float | None = None,
        frame_mpx: float | None = None,
    ) -> Heartbeat:
        """Renew the chunk's lease and record its frames; the task's progress,
        time left and speed follow from all its chunks. ``cancelled`` once the
        task ended (cancelled, or failed by another chunk).

        Raises LeaseLost when the chunk's lease was taken over.
        """
        with self._db.write() as session:
            task, row = _locked(session, claim)
            now = self._clock()
            if task.status != TaskStatus.PROCESSING:
                return Heartbeat(cancelled=True, lease_expires_at=now)
            expires = chunk_rows.beat(row, claim, frames_done=frames_done, fps=fps, now=now)
            task_rows.record_frame_size(task, frame_mpx)
            _record_progress(session, task, now)
            return Heartbeat(cancelled=False, lease_expires_at=expires)

    def finish_chunk(self, claim: ChunkClaim, *, part_key: str) -> Claim | None:
        """Record the chunk done with its part under ``part_key``. When it was the
        task's last, lease the task to this worker to join the parts: returns
        that claim (finish it with ``complete`` or ``fail``), else None.

        Raises LeaseLost (and changes nothing) when the chunk's lease was taken
        over or the task ended.
        """
        with self._db.write() as session:
            task, row = _locked_running(session, claim)
            now = self._clock()
            chunk_rows.finish(row, part_key=part_key, now=now)
            _record_progress(session, task, now)
            if not chunk_rows.all_done(_rows_of(session, task.id)):
                return None
            return task_rows.start(task, worker_id=claim.worker_id, lease_s=claim.lease_s, now=now)

    def fail_chunk(
        self, claim: ChunkClaim, *, error: TaskError, retry: bool, callback_body: CallbackBody
    ) -> Task:
        """Retry puts the chunk back (after a delay) while its attempts remain;
        else the chunk fails for good, and its task with it (refunded, callback).

        Raises LeaseLost (and changes nothing) when the chunk's lease was taken
        over or the task ended.
        """
        with self._db.write() as session:
            task, row = _locked_running(session, claim)
            now = self._clock()
            if retry and row.attempts < self._max_attempts:
                chunk_rows.back_off(row, now)
            else:
                chunk_rows.give_up(row, now)
                fail_task(session, task, error, now=now, callback_body=callback_body)
            return convert.task(task)

    def reap_chunks(self, *, callback_body: CallbackBody, max_attempts: int) -> list[Task]:
        """Requeue chunks whose lease expired, or fail their task (refunded) once
        the chunk's ``max_attempts`` are spent. Returns the tasks it failed."""
        now = self._clock()
        expired = (
            select(ChunkRow.task_id, ChunkRow.index)
            .where(ChunkRow.status == ChunkStatus.PROCESSING, ChunkRow.lease_expires_at < now)
            .order_by(ChunkRow.task_id, ChunkRow.index)
        )
        failed: list[Task] = []
        with self._db.write() as session:
            for task_id, index in session.execute(expired).all():
                task = session.get(TaskRow, task_id, with_for_update=True)
                row = session.get(ChunkRow, (task_id, index), with_for_update=True)
                if task is None or row is None or not _expired(row, now):
                    continue  # renewed or ended since the first look
                if task.status != TaskStatus.PROCESSING or row.attempts < max_attempts:
                    chunk_rows.requeue(row, now)
                    continue
                chunk_rows.give_up(row, now)
                fail_task(
                    session, task, task_rows.ABANDONED_ERROR, now=now, callback_body=callback_body
                )
                failed.append(convert.task(task))
        return failed

    def count_chunks_by_status(self) -> Mapping[ChunkStatus, int]:
        """How many chunks are in each status, of tasks still running (every
        status present, 0 when none): the work a deployment has in hand."""
        query = (
            select(ChunkRow.status, func.count())
            .join(TaskRow, TaskRow.id == ChunkRow.task_id)
            .where(TaskRow.status == TaskStatus.PROCESSING)
            .group_by(ChunkRow.status)
        )
        counts = dict.fromkeys(ChunkStatus, 0)
        with self._db.read() as session:
            for status, count in session.execute(query):
                counts[ChunkStatus(status)] = count
        return counts

    def task_chunks(self, task_id: str) -> list[Chunk]:
        """The task's chunks in order; empty when it was never planned into several."""
        with self._db.read() as session:
            return [chunk_rows.chunk(row) for row in _rows_of(session, task_id)]

    def chunk_leftovers(self, *, limit: int = 500) -> list[Chunk]:
        """Chunks of ended tasks (their parts are no longer needed)."""
        query = (
            select(ChunkRow)
            .join(TaskRow, TaskRow.id == ChunkRow.task_id)
            .where(TaskRow.status.in_(_ENDED))
            .limit(limit)
        )
        with self._db.read() as session:
            return [chunk_rows.chunk(row) for row in session.scalars(query)]

    def forget_chunks(self, task_id: str) -> None:
        """Drop an ended task's chunk rows (their parts are deleted)."""
        ended = select(TaskRow.id).where(TaskRow.id == task_id, TaskRow.status.in_(_ENDED))
        with self._db.write() as session:
            session.execute(delete(ChunkRow).where(ChunkRow.task_id == task_id, exists(ended)))


def oldest_pending_chunk(session: Session) -> datetime | None:
    """Since when the longest-waiting pending chunk of a running task has waited."""
    query = (
        select(func.min(ChunkRow.updated_at))
        .join(TaskRow, TaskRow.id == ChunkRow.task_id)
        .where(ChunkRow.status == ChunkStatus.PENDING, TaskRow.status == TaskStatus.PROCESSING)
    )
    return session.scalar(query)


def chunk_speeds(session: Session) -> list[tuple[str, float, float | None]]:
    """(worker, frames per second, its task's output megapixels per frame) of every
    chunk running now that reported a speed."""
    query = (
        select(ChunkRow.lease_owner, ChunkRow.fps, TaskRow.frame_mpx)
        .join(TaskRow, TaskRow.id == ChunkRow.task_id)
        .where(
            ChunkRow.status == ChunkStatus.PROCESSING,
            ChunkRow.lease_owner.is_not(None),
            ChunkRow.fps.is_not(None),
        )
    )
    return [
        (owner, fps, frame_mpx)
        for owner, fps, frame_mpx in session.execute(query)
        if owner is not None and fps is not None
    ]


def has_chunks(session: Session, task_id: str) -> bool:
    """Whether the task was planned into chunks."""
    query = select(ChunkRow.task_id).where(ChunkRow.task_id == task_id).limit(1)
    return session.scalar(query) is not None


def _rows_of(session: Session, task_id: str) -> list[ChunkRow]:
    query = select(ChunkRow).where(ChunkRow.task_id == task_id).order_by(ChunkRow.index)
    return list(session.scalars(query))


def _locked(session: Session, claim: ChunkClaim) -> tuple[TaskRow, ChunkRow]:
    """The task row, then the claimed chunk's row, both locked, in that order.

    Raises LeaseLost as ``chunk_rows.fenced``.
    """
    task = session.get(TaskRow, claim.task.id, with_for_update=True)
    row = session.get(ChunkRow, (claim.task.id, claim.chunk.index), with_for_update=True)
    row = chunk_rows.fenced(row, claim)
    if task is None:
        raise LeaseLost(f"Task {claim.task.id} is gone")
    return task, row


def _locked_running(session: Session, claim: ChunkClaim) -> tuple[TaskRow, ChunkRow]:
    """``_locked``, for a write that needs the task still running.

    Raises LeaseLost as ``_locked``, and when the task ended while the chunk ran.
    """
    task, row = _locked(session, claim)
    if task.status != TaskStatus.PROCESSING:
        raise LeaseLost(f"Task {task.id} ended while chunk {row.index} ran")
    return task, row


def _expired(row: ChunkRow, now: datetime) -> bool:
    return (
        row.status == ChunkStatus.PROCESSING
        and row.lease_expires_at is not None
        and row.lease_expires_at < now
    )


def _record_progress(session: Session, task: TaskRow, now: datetime) -> None:
    rows = _rows_of(session, task.id)
    task_rows.record_progress(
        task,
        progress=chunk_rows.progress_percent(rows),
        estimated_time_s=chunk_rows.seconds_left(rows),
        now=now,
        fps=chunk_rows.task_fps(rows),
    )
