"""A chunk row's life, and what a task's chunks say about the task.

The chunk counterpart of ``upres.db.task_rows``: pure functions of rows
that ``SqlChunks`` loaded in a transaction (no session, no I/O). A chunk
moves from pending through processing to done (or failed, with its task)
by these rules alone, leased, fenced and retried as a task is.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import ColumnElement, ScalarSelect, func, or_, select
from sqlalchemy.orm import aliased

from upres.db import lease
from upres.db.tables import ChunkRow
from upres.domain.chunks import Chunk, ChunkClaim, ChunkStatus, Span
from upres.domain.tasks import Task
from upres.errors import LeaseLost


def new_rows(task_id: str, spans: Sequence[Span], now: datetime) -> list[ChunkRow]:
    """The pending rows of a task planned into ``spans``."""
    return [
        ChunkRow(
            task_id=task_id,
            index=span.index,
            first_frame=span.first_frame,
            frame_count=span.frame_count,
            start_s=span.start_s,
            end_s=span.end_s,
            status=ChunkStatus.PENDING,
            attempts=0,
            lease_owner=None,
            lease_expires_at=None,
            not_before=None,
            frames_done=0,
            fps=None,
            part_key=None,
            updated_at=now,
        )
        for span in spans
    ]


def chunk(row: ChunkRow) -> Chunk:
    return Chunk(
        task_id=row.task_id,
        index=row.index,
        first_frame=row.first_frame,
        frame_count=row.frame_count,
        start_s=row.start_s,
        end_s=row.end_s,
        status=ChunkStatus(row.status),
        attempts=row.attempts,
        frames_done=row.frames_done,
        part_key=row.part_key,
        worker_id=row.lease_owner,
    )


def claimable(now: datetime) -> ColumnElement[bool]:
    """A pending chunk whose retry delay (if any) has passed, as a WHERE condition."""
    return (ChunkRow.status == ChunkStatus.PENDING) & or_(
        ChunkRow.not_before.is_(None), ChunkRow.not_before <= now
    )


def in_flight() -> ScalarSelect[int]:
    """How many chunks of the outer query's chunk's task are processing: the
    first key of the claim order, so that workers spread over tasks and one
    long task does not starve the others."""
    busy = aliased(ChunkRow)
    return (
        select(func.count())
        .where(busy.task_id == ChunkRow.task_id, busy.status == ChunkStatus.PROCESSING)
        .scalar_subquery()
    )


def start(
    row: ChunkRow, task: Task, *, worker_id: str, lease_s: float, now: datetime
) -> ChunkClaim:
    """Move a pending chunk to processing, leased to ``worker_id``: its next attempt."""
    row.status = ChunkStatus.PROCESSING
    row.frames_done = 0
    row.fps = None
    expires = lease.start(row, worker_id=worker_id, lease_s=lease_s, now=now)
    return ChunkClaim(
        chunk=chunk(row),
        task=task,
        worker_id=worker_id,
        attempt=row.attempts,
        lease_expires_at=expires,
        lease_s=lease_s,
    )


def fenced(row: ChunkRow | None, claim: ChunkClaim) -> ChunkRow:
    """``row`` (the claimed chunk's), while the claim still holds it.

    Raises LeaseLost when another attempt or worker owns the chunk, or it is
    no longer processing.
    """
    if (
        row is None
        or not lease.holds(row, worker_id=claim.worker_id, attempt=claim.attempt)
        or row.status != ChunkStatus.PROCESSING
    ):
        raise LeaseLost(
            f"Lease on chunk {claim.chunk.index} of task {claim.task.id} "
            f"(attempt {claim.attempt}) was lost"
        )
    return row


def beat(
    row: ChunkRow, claim: ChunkClaim, *, frames_done: int, fps: float | None, now: datetime
) -> datetime:
    """Renew a fenced chunk's lease and record its frames (within the chunk,
    never going back) and speed; returns the new expiry."""
    row.frames_done = max(row.frames_done, min(row.frame_count, max(0, frames_done)))
    if fps is not None and math.isfinite(fps) and fps >= 0:
        row.fps = fps
    return lease.renew(row, lease_s=claim.lease_s, now=now)


def finish(row: ChunkRow, *, part_key: str, now: datetime) -> None:
    """A fenced chunk is done: its part lies under ``part_key``. The lease
    ends; its owner stays, to say who ran it."""
    row.status = ChunkStatus.DONE
    row.part_key = part_key
    row.frames_done = row.frame_count
    owner = row.lease_owner
    _release(row, now)
    row.lease_owner = owner


def requeue(row: ChunkRow, now: datetime) -> None:
    """Put a chunk back to pending, claimable at once; its attempts are kept."""
    _to_pending(row)
    lease.requeue(row, now)


def back_off(row: ChunkRow, now: datetime) -> None:
    """Requeue a chunk after a transient failure, claimable after the retry delay."""
    _to_pending(row)
    lease.back_off(row, now)


def _to_pending(row: ChunkRow) -> None:
    row.status = ChunkStatus.PENDING
    row.frames_done = 0
    row.fps = None


def give_up(row: ChunkRow, now: datetime) -> None:
    """The chunk failed for good (its task fails with it)."""
    row.status = ChunkStatus.FAILED
    _release(row, now)


def _release(row: ChunkRow, now: datetime) -> None:
    row.fps = None
    lease.release(row, now)


def all_done(rows: Sequence[ChunkRow]) -> bool:
    return bool(rows) and all(row.status == ChunkStatus.DONE for row in rows)


def frames_done(rows: Sequence[ChunkRow]) -> int:
    """Frames finished over a task's chunks: whole done chunks, and what the
    running ones reported."""
    return sum(
        row.frame_count if row.status == ChunkStatus.DONE else row.frames_done for row in rows
    )


def progress_percent(rows: Sequence[ChunkRow]) -> int:
    """The task's progress from its chunks: frames done over all frames."""
    total = sum(row.frame_count for row in rows)
    return 100 * frames_done(rows) // total if total else 0


def task_fps(rows: Sequence[ChunkRow]) -> float | None:
    """The task's speed: the sum of its running chunks' (the workers on it now);
    None while none has reported one."""
    speeds = [row.fps for row in rows if row.status == ChunkStatus.PROCESSING and row.fps]
    return sum(speeds) if speeds else None


def seconds_left(rows: Sequence[ChunkRow]) -> int | None:
    """Frames left over the speed of the workers on the task now; None while
    unknown (no running chunk has reported a speed)."""
    fps = task_fps(rows)
    if fps is None:
        return None
    left = sum(row.frame_count for row in rows) - frames_done(rows)
    return math.ceil(max(left, 0) / fps)
