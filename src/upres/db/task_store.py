"""``SqlTaskStore``: the TaskStore on SQLite or PostgreSQL through SQLAlchemy.

The task table is the queue. A claim moves the oldest pending row to
processing under a lease (SQLite: the whole claim runs under ``BEGIN
IMMEDIATE``; PostgreSQL: ``SELECT ... FOR UPDATE SKIP LOCKED``, so concurrent
claimers never wait on each other or take the same row). Worker writes are
fenced: they load the row only where lease owner and attempt still match.
The same SQLAlchemy statements serve both dialects (SQLite ignores ``FOR
UPDATE``); the dialect differences live in ``upres.db.session``.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime

from sqlalchemy import Engine, bindparam, delete, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from upres.clock import Clock, utc_now
from upres.db import convert, ledger, outbox, task_rows
from upres.db.accounts import SqlAccounts
from upres.db.chunk_store import SqlChunks, chunk_speeds, has_chunks, oldest_pending_chunk
from upres.db.rowread import RowRead
from upres.db.settle import fail_task
from upres.db.tables import IdempotencyRow, TaskRow
from upres.db.throughput import SqlThroughput
from upres.db.unit import Database
from upres.db.uploads import SqlUploads
from upres.domain.accounts import LedgerKind
from upres.domain.media import VideoCodec
from upres.domain.records import (
    IDEMPOTENCY_WINDOW,
    Backlog,
    CallbackBody,
    Claim,
    Heartbeat,
    IdempotencyRecord,
    IdempotentHit,
    NewTask,
)
from upres.domain.tasks import Task, TaskError, TaskStatus
from upres.errors import ServiceUnavailable

# A poll's read: one indexed lookup, without a session or Core execution around it.
_TASK_BY_ID = select(TaskRow.__table__).where(TaskRow.__table__.c.id == bindparam("id"))


class SqlTaskStore(SqlAccounts, outbox.SqlCallbacks, SqlThroughput, SqlUploads, SqlChunks):
    """The system of record on one SQL database (see ``upres.database.TaskStore``).

    ``engine`` is an Engine or a URL; the schema must already be migrated
    (``upres.db.migrate``). ``max_attempts`` bounds how often a task is run.
    """

    def __init__(
        self, engine: Engine | str, clock: Clock = utc_now, *, max_attempts: int = 3
    ) -> None:
        super().__init__(Database(engine), clock)
        self._max_attempts = max_attempts
        self._task_by_id = RowRead(self._db.engine, _TASK_BY_ID)

    @property
    def engine(self) -> Engine:
        return self._db.engine

    def close(self) -> None:
        self._db.dispose()

    # tasks, as clients see them

    def create_task(self, new: NewTask, *, idempotency: IdempotencyRecord | None = None) -> Task:
        """Raises InsufficientQuota, or IdempotencyConflict when a concurrent
        submission just took the same ``Idempotency-Key``."""
        try:
            with self._db.write() as session:
                return self._insert_task(session, new, idempotency)
        except ServiceUnavailable as exc:
            if idempotency is not None and isinstance(exc.__cause__, IntegrityError):
                raise task_rows.key_in_use() from exc
            raise

    def _insert_task(
        self, session: Session, new: NewTask, idempotency: IdempotencyRecord | None
    ) -> Task:
        amount = convert.to_micro(new.credits_reserved)
        ledger.reserve(session, account_id=new.account_id, amount=amount)
        row = task_rows.new_row(new, amount)
        session.add(row)
        session.flush()
        ledger.record(
            session,
            account_id=new.account_id,
            kind=LedgerKind.RESERVE,
            amount=amount,
            at=new.created_at,
            task_id=new.id,
        )
        if idempotency is not None:
            self._remember(session, new, idempotency)
        return convert.task(row)

    def _remember(self, session: Session, new: NewTask, record: IdempotencyRecord) -> None:
        # Keys older than the replay window are dead: dropping this account's
        # stale ones here bounds the table and lets such a key be reused. A live
        # record of the same key stays, so the insert below conflicts with it.
        session.execute(
            delete(IdempotencyRow).where(
                IdempotencyRow.account_id == new.account_id,
                IdempotencyRow.created_at < new.created_at - IDEMPOTENCY_WINDOW,
            )
        )
        session.add(task_rows.new_idempotency_row(new, record))
        session.flush()

    def find_idempotent(
        self, *, account_id: str, key: str, since: datetime
    ) -> IdempotentHit | None:
        query = select(IdempotencyRow, TaskRow).join(TaskRow, TaskRow.id == IdempotencyRow.task_id)
        query = query.where(
            IdempotencyRow.account_id == account_id,
            IdempotencyRow.key == key,
            IdempotencyRow.created_at >= since,
        )
        with self._db.read() as session:
            found = session.execute(query).one_or_none()
            if found is None:
                return None
            record, row = found
            return IdempotentHit(request_hash=record.request_hash, task=convert.task(row))

    def get_task(self, task_id: str, *, account_id: str | None = None) -> Task:
        """Raises TaskNotFound when absent or owned by another account."""
        return convert.task(task_rows.owned(self._task_by_id(id=task_id), task_id, account_id))

    def list_tasks(self, *, account_id: str, limit: int) -> list[Task]:
        """The account's ``limit`` newest tasks, newest first."""
        query = (
            select(TaskRow)
            .where(TaskRow.account_id == account_id)
            .order_by(TaskRow.created_at.desc(), TaskRow.id.desc())
            .limit(limit)
        )
        with self._db.read() as session:
            return [convert.task(row) for row in session.scalars(query)]

    def cancel_task(self, task_id: str, *, account_id: str, callback_body: CallbackBody) -> Task:
        """Raises TaskNotFound, or TaskNotCancellable when the task already ended."""
        with self._db.write() as session:
            row = _owned(session, task_id, account_id)
            now = self._clock()
            task_rows.cancel(row, now)
            ledger.settle(session, row, charged=0, at=now)
            outbox.enqueue(session, row, callback_body=callback_body, at=now)
            return convert.task(row)

    # the queue, as workers see it

    def claim(self, *, worker_id: str, lease_s: float) -> Claim | None:
        query = (
            select(TaskRow)
            .where(task_rows.claimable(self._clock()))
            .order_by(TaskRow.created_at, TaskRow.id)
            .limit(1)
            .with_for_update(skip_locked=True)
        )
        with self._db.write() as session:
            row = session.scalars(query).first()
            if row is None:
                return None
            claim = task_rows.start(row, worker_id=worker_id, lease_s=lease_s, now=self._clock())
            session.flush()
            return claim

    def heartbeat(
        self,
        claim: Claim,
        *,
        progress: int,
        estimated_time_s: int,
        fps: float | None = None,
        frame_mpx: float | None = None,
    ) -> Heartbeat:
        """Raises LeaseLost when the lease was taken over or the task ended otherwise."""
        with self._db.write() as session:
            row = _fenced(session, claim, allow_cancelled=True)
            task_rows.record_frame_size(row, frame_mpx)
            return task_rows.beat(
                row,
                claim,
                progress=progress,
                estimated_time_s=estimated_time_s,
                now=self._clock(),
                fps=fps,
            )

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
        """Raises LeaseLost (and changes nothing, charges nothing) when fenced out."""
        with self._db.write() as session:
            row = _fenced(session, claim)
            now = self._clock()
            task_rows.finish(
                row,
                result_key=result_key,
                result_expires_at=result_expires_at,
                actual_duration_s=actual_duration_s,
                now=now,
                notes=notes,
                result_codec=result_codec,
            )
            ledger.settle(session, row, charged=convert.to_micro(credits_charged), at=now)
            outbox.enqueue(session, row, callback_body=callback_body, at=now)
            return convert.task(row)

    def fail(
        self, claim: Claim, *, error: TaskError, retry: bool, callback_body: CallbackBody
    ) -> Task:
        """Raises LeaseLost (and changes nothing) when fenced out."""
        with self._db.write() as session:
            row = _fenced(session, claim)
            now = self._clock()
            if retry and task_rows.may_run_again(row, self._max_attempts):
                task_rows.back_off(row, now, keep_progress=has_chunks(session, row.id))
            else:
                fail_task(session, row, error, now=now, callback_body=callback_body)
            return convert.task(row)

    def reap(self, *, callback_body: CallbackBody, max_attempts: int | None = None) -> list[Task]:
        limit = self._max_attempts if max_attempts is None else max_attempts
        now = self._clock()
        query = (
            select(TaskRow)
            .where(TaskRow.status == TaskStatus.PROCESSING, TaskRow.lease_expires_at < now)
            # One lock order (account, then task) for every reaper: no deadlocks between them.
            .order_by(TaskRow.account_id, TaskRow.id)
            .with_for_update(skip_locked=True)
        )
        with self._db.write() as session:
            touched = []
            for row in session.scalars(query).all():
                if task_rows.may_run_again(row, limit):
                    task_rows.requeue(row, now, keep_progress=has_chunks(session, row.id))
                else:
                    fail_task(
                        session,
                        row,
                        task_rows.ABANDONED_ERROR,
                        now=now,
                        callback_body=callback_body,
                    )
                touched.append(convert.task(row))
        return touched + self.reap_chunks(callback_body=callback_body, max_attempts=limit)

    # results and metrics

    def expired_results(self, *, now: datetime) -> list[Task]:
        query = select(TaskRow).where(
            TaskRow.status == TaskStatus.COMPLETED,
            TaskRow.result_key.is_not(None),
            TaskRow.result_expires_at <= now,
        )
        with self._db.read() as session:
            return [convert.task(row) for row in session.scalars(query)]

    def forget_result(self, task_id: str) -> None:
        """Drop the result key (the file is gone); the expiry stays to tell clients why."""
        with self._db.write() as session:
            row = _owned(session, task_id, None)
            row.result_key = None

    def count_by_status(self) -> Mapping[TaskStatus, int]:
        query = select(TaskRow.status, func.count()).group_by(TaskRow.status)
        counts = dict.fromkeys(TaskStatus, 0)
        with self._db.read() as session:
            for status, count in session.execute(query):
                counts[TaskStatus(status)] = count
        return counts

    def backlog(self) -> Backlog:
        """The oldest pending task and chunk (of a running task), and the speed
        of every worker running a task or a chunk now."""
        with self._db.read() as session:
            worker_fps, worker_mpx_per_s = _worker_speeds(session)
            return Backlog(
                oldest_pending_task=session.scalar(
                    select(func.min(TaskRow.created_at)).where(TaskRow.status == TaskStatus.PENDING)
                ),
                oldest_pending_chunk=oldest_pending_chunk(session),
                worker_fps=worker_fps,
                worker_mpx_per_s=worker_mpx_per_s,
            )

    def queue_depth(self) -> int:
        query = select(func.count()).where(TaskRow.status == TaskStatus.PENDING)
        with self._db.read() as session:
            return int(session.scalar(query) or 0)

    def ping(self) -> None:
        """Raises ServiceUnavailable when the database does not answer."""
        self._db.ping()


def _worker_speeds(session: Session) -> tuple[dict[str, float], dict[str, float]]:
    """Frames and output megapixels per second by worker: its running task's, or
    its chunks' (megapixels only where the heartbeats told the frame size)."""
    tasks = select(TaskRow.lease_owner, TaskRow.fps, TaskRow.frame_mpx).where(
        TaskRow.status == TaskStatus.PROCESSING,
        TaskRow.lease_owner.is_not(None),
        TaskRow.fps.is_not(None),
    )
    running = [
        (owner, fps, mpx) for owner, fps, mpx in session.execute(tasks) if owner and fps is not None
    ]
    fps_by: dict[str, float] = {}
    mpx_by: dict[str, float] = {}
    for owner, fps, frame_mpx in [*running, *chunk_speeds(session)]:
        fps_by[owner] = fps_by.get(owner, 0.0) + fps
        if frame_mpx is not None:
            mpx_by[owner] = mpx_by.get(owner, 0.0) + fps * frame_mpx
    return fps_by, mpx_by


def _owned(session: Session, task_id: str, account_id: str | None) -> TaskRow:
    """The task's row, locked for the write that follows (see ``task_rows.owned``)."""
    row = session.get(TaskRow, task_id, with_for_update=True)
    return task_rows.owned(row, task_id, account_id)


def _fenced(session: Session, claim: Claim, *, allow_cancelled: bool = False) -> TaskRow:
    """The claimed row, locked; raises LeaseLost as ``task_rows.fenced``."""
    row = session.get(TaskRow, claim.task.id, with_for_update=True)
    return task_rows.fenced(row, claim, allow_cancelled=allow_cancelled)
