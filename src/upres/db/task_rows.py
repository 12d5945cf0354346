"""A task row's life: its creation, checks and state changes.

``SqlTaskStore`` applies them to rows it loaded in a transaction, so a task
moves from pending through processing to its end, and is fenced, by these
rules alone. Pure functions of the row: no session, no I/O.
"""

from __future__ import annotations

import math
from datetime import datetime

from sqlalchemy import ColumnElement, or_

from upres.db import convert, lease
from upres.db.tables import IdempotencyRow, TaskRow
from upres.domain.media import VideoCodec
from upres.domain.records import Claim, Heartbeat, IdempotencyRecord, NewTask
from upres.domain.tasks import TaskError, TaskStatus
from upres.errors import IdempotencyConflict, LeaseLost, TaskNotCancellable, TaskNotFound

CANCELLED_ERROR = TaskError(code="request_cancelled", message="The task was cancelled")
ABANDONED_ERROR = TaskError(
    code="service_error", message="The task's worker stopped responding too many times"
)


def new_row(new: NewTask, reserved: int) -> TaskRow:
    """The pending row of a submission that reserved ``reserved`` micro-credits."""
    return TaskRow(
        id=new.id,
        account_id=new.account_id,
        model=new.model,
        status=TaskStatus.PENDING,
        progress=0,
        factor=int(new.factor),
        input_url=new.input_url,
        callback_url=new.callback_url,
        video_duration_s=new.video_duration_s,
        credits_reserved=reserved,
        credits_charged=None,
        estimated_time_s=new.estimated_time_s,
        user_group=new.user_group,
        created_at=new.created_at,
        updated_at=new.created_at,
        finished_at=None,
        result_key=None,
        result_expires_at=None,
        error_code=None,
        error_message=None,
        attempts=0,
        cancel_requested=False,
        lease_owner=None,
        lease_expires_at=None,
        not_before=None,
        notes=None,
        result_codec=None,
        network=new.network,
        denoise=new.denoise,
        frame_rate=new.frame_rate,
        slowmo=new.slowmo,
    )


def new_idempotency_row(new: NewTask, record: IdempotencyRecord) -> IdempotencyRow:
    """What remembers that ``new`` was submitted with ``record``'s key."""
    return IdempotencyRow(
        account_id=new.account_id,
        key=record.key,
        request_hash=record.request_hash,
        task_id=new.id,
        created_at=new.created_at,
    )


def key_in_use() -> IdempotencyConflict:
    """The refusal of a submission whose ``Idempotency-Key`` another submission
    took after the key was looked up (both stores raise it on that race)."""
    return IdempotencyConflict("A request with this Idempotency-Key is already being processed")


def owned(row: TaskRow | None, task_id: str, account_id: str | None) -> TaskRow:
    """``row``, when it exists and belongs to ``account_id`` (any account when None).

    Raises TaskNotFound otherwise: another account's task is as good as absent.
    """
    if row is None or (account_id is not None and row.account_id != account_id):
        raise TaskNotFound(f"Task not found: {task_id}")
    return row


def fenced(row: TaskRow | None, claim: Claim, *, allow_cancelled: bool = False) -> TaskRow:
    """``row`` (the claimed task's), while the claim still holds it.

    Raises LeaseLost when another attempt or worker owns the task, or it is no
    longer processing (a cancelled task is let through only for heartbeats,
    which report the cancel).
    """
    allowed = {TaskStatus.PROCESSING} | ({TaskStatus.CANCELLED} if allow_cancelled else set())
    if (
        row is None
        or not lease.holds(row, worker_id=claim.worker_id, attempt=claim.attempt)
        or TaskStatus(row.status) not in allowed
    ):
        raise LeaseLost(f"Lease on task {claim.task.id} (attempt {claim.attempt}) was lost")
    return row


def claimable(now: datetime) -> ColumnElement[bool]:
    """A pending task whose retry delay (if any) has passed, as a WHERE condition."""
    return (TaskRow.status == TaskStatus.PENDING) & or_(
        TaskRow.not_before.is_(None), TaskRow.not_before <= now
    )


def start(row: TaskRow, *, worker_id: str, lease_s: float, now: datetime) -> Claim:
    """Move a pending row to processing, leased to ``worker_id``: its next attempt."""
    row.status = TaskStatus.PROCESSING
    expires = lease.start(row, worker_id=worker_id, lease_s=lease_s, now=now)
    return Claim(
        task=convert.task(row),
        worker_id=worker_id,
        attempt=row.attempts,
        lease_expires_at=expires,
        lease_s=lease_s,
    )


def beat(
    row: TaskRow,
    claim: Claim,
    *,
    progress: int,
    estimated_time_s: int,
    now: datetime,
    fps: float | None = None,
) -> Heartbeat:
    """Renew a fenced row's lease and record progress (kept below 100, never going
    back) and speed; a cancelled row is left as it is and reported."""
    if row.status == TaskStatus.CANCELLED:
        return Heartbeat(cancelled=True, lease_expires_at=now)
    record_progress(row, progress=progress, estimated_time_s=estimated_time_s, now=now, fps=fps)
    expires = lease.renew(row, lease_s=claim.lease_s, now=now)
    return Heartbeat(cancelled=False, lease_expires_at=expires)


def record_frame_size(row: TaskRow, frame_mpx: float | None) -> None:
    """Record the output megapixels of one of the row's frames (kept when None)."""
    if frame_mpx is not None and frame_mpx > 0:
        row.frame_mpx = frame_mpx


def record_progress(
    row: TaskRow, *, progress: int, estimated_time_s: int | None, now: datetime, fps: float | None
) -> None:
    """Record a running row's progress (kept below 100, never going back),
    time left (kept when None) and speed (kept when None or not a speed)."""
    row.progress = max(row.progress, min(99, max(0, progress)))
    if estimated_time_s is not None:
        row.estimated_time_s = max(0, estimated_time_s)
    if fps is not None and math.isfinite(fps) and fps >= 0:
        row.fps = fps
    row.updated_at = now


def hand_to_chunks(row: TaskRow, now: datetime) -> None:
    """Release a fenced row's lease once it is planned into chunks: the chunks
    carry leases from now on, and the task waits, processing, for the last."""
    lease.release(row, now)


def cancel(row: TaskRow, now: datetime) -> None:
    """End a pending or processing row cancelled (the worker learns it by heartbeat).

    Raises TaskNotCancellable when the task has already ended.
    """
    if TaskStatus(row.status).is_terminal:
        raise TaskNotCancellable(f"Task {row.id} has already ended ({row.status})")
    row.cancel_requested = True
    end(row, TaskStatus.CANCELLED, now, error=CANCELLED_ERROR)


def finish(
    row: TaskRow,
    *,
    result_key: str,
    result_expires_at: datetime,
    actual_duration_s: float,
    now: datetime,
    notes: tuple[str, ...] = (),
    result_codec: VideoCodec | None = None,
) -> None:
    """End a fenced row completed with its result, written in ``result_codec``
    (settling it is the store's part)."""
    row.progress = 100
    row.notes = convert.notes_text(notes)
    row.result_codec = result_codec
    row.result_key = result_key
    row.result_expires_at = result_expires_at
    row.video_duration_s = actual_duration_s
    end(row, TaskStatus.COMPLETED, now, error=None)


def may_run_again(row: TaskRow, max_attempts: int) -> bool:
    """Whether a row that stopped short has attempts left."""
    return row.attempts < max_attempts


def end(row: TaskRow, status: TaskStatus, now: datetime, *, error: TaskError | None) -> None:
    row.status = status
    row.estimated_time_s = 0
    row.finished_at = now
    row.updated_at = now
    row.lease_expires_at = None
    row.error_code = None if error is None else error.code
    row.error_message = None if error is None else error.message


def requeue(row: TaskRow, now: datetime, *, keep_progress: bool = False) -> None:
    """Put a row back in the queue, claimable at once (its worker is gone: its lease
    ran out); the lease owner is cleared, the attempt count kept. Progress
    starts again from 0 unless ``keep_progress`` (a chunked task: its finished
    chunks stay finished)."""
    _to_pending(row, keep_progress=keep_progress)
    lease.requeue(row, now)


def back_off(row: TaskRow, now: datetime, *, keep_progress: bool = False) -> None:
    """Requeue a row after a transient failure of its attempt, claimable only
    after that attempt's retry delay."""
    _to_pending(row, keep_progress=keep_progress)
    lease.back_off(row, now)


def _to_pending(row: TaskRow, *, keep_progress: bool) -> None:
    row.status = TaskStatus.PENDING
    if not keep_progress:
        row.progress = 0
