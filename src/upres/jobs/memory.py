"""``MemoryTaskStore``: the TaskStore contract in memory, for unit tests and
single-process experiments.

Not durable (it all goes with the process) and not shared between processes:
``upres serve`` and its worker processes need ``SqlTaskStore``. Within one
process it may be shared by any number of threads (API and worker threads
alike): one lock serialises every method, which makes each method the one
transaction the contract asks for.

It behaves as ``SqlTaskStore`` does, down to the exceptions and the ledger: it
keeps the same rows (``upres.db.tables``, never attached to a session) in
dicts and moves them with the same functions (``upres.jobs.lifecycle``, and
the ledger, outbox and throughput rules of ``upres.db``), credits in integer
micro-credits, times from the injected clock. What a method would change is
worked out on copies and stored only once all that can fail (the caller's
``callback_body``) has succeeded, so a method that raises changes nothing.
Datetimes are kept as given: pass aware UTC ones, as upres does (the SQL
store turns other aware ones into UTC and refuses naive ones). Column lengths
are not enforced, as on SQLite (PostgreSQL refuses a string over its column's).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import inspect

from upres.db import convert, ledger, outbox
from upres.db.tables import IdempotencyRow, LedgerRow, OutboxRow, TaskRow
from upres.domain.accounts import LedgerKind
from upres.domain.tasks import Task, TaskError, TaskStatus
from upres.errors import InsufficientQuota, UpresError
from upres.jobs import lifecycle
from upres.jobs._memory_accounts import MemoryAccounts, unique_violation
from upres.jobs.store import (
    IDEMPOTENCY_WINDOW,
    CallbackBody,
    Claim,
    Clock,
    Heartbeat,
    IdempotencyRecord,
    IdempotentHit,
    NewTask,
    TaskStore,
    utc_now,
)

_TASK_COLUMNS = tuple(column.key for column in inspect(TaskRow).column_attrs)


@dataclass(frozen=True)
class _Change:
    """A task row's next state, worked out on a copy, and what storing it writes."""

    row: TaskRow
    entries: tuple[LedgerRow, ...] = ()
    callback: OutboxRow | None = None


class MemoryTaskStore(MemoryAccounts, TaskStore):
    """The system of record in this process's memory (see ``upres.jobs.store.TaskStore``).

    ``clock`` gives every time the store records; ``max_attempts`` bounds how
    often a task is run. Raises ServiceUnavailable only where the SQL store's
    unique keys would (a second key with one hash, a second task with one id).
    It subclasses the protocol so that mypy holds each signature to it.
    """

    def __init__(self, clock: Clock = utc_now, *, max_attempts: int = 3) -> None:
        super().__init__(clock)
        self._max_attempts = max_attempts
        self._tasks: dict[str, TaskRow] = {}
        self._idempotency: dict[tuple[str, str], IdempotencyRow] = {}

    # tasks, as clients see them

    def create_task(self, new: NewTask, *, idempotency: IdempotencyRecord | None = None) -> Task:
        """Raises NotFound when the account does not exist, InsufficientQuota
        when its balance does not cover the reservation, IdempotencyConflict
        when ``idempotency``'s key was used within ``IDEMPOTENCY_WINDOW``."""
        amount = convert.to_micro(new.credits_reserved)
        with self._lock:
            if self._account(new.account_id).balance < amount:
                raise InsufficientQuota("Insufficient quota. Please top up your account.")
            if new.id in self._tasks or self._key_is_live(new, idempotency):
                raise _clash(idempotency)
            row = lifecycle.new_row(new, amount)
            self._tasks[row.id] = row
            self._post(
                ledger.entry(
                    account_id=new.account_id,
                    kind=LedgerKind.RESERVE,
                    amount=amount,
                    at=new.created_at,
                    task_id=new.id,
                )
            )
            if idempotency is not None:
                self._remember(new, idempotency)
            return convert.task(row)

    def find_idempotent(
        self, *, account_id: str, key: str, since: datetime
    ) -> IdempotentHit | None:
        with self._lock:
            record = self._idempotency.get((account_id, key))
            if record is None or record.created_at < since:
                return None
            task = convert.task(self._tasks[record.task_id])
            return IdempotentHit(request_hash=record.request_hash, task=task)

    def get_task(self, task_id: str, *, account_id: str | None = None) -> Task:
        """Raises TaskNotFound when absent or owned by another account."""
        with self._lock:
            return convert.task(self._owned(task_id, account_id))

    def list_tasks(self, *, account_id: str, limit: int) -> list[Task]:
        """The account's ``limit`` newest tasks, newest first."""
        with self._lock:
            rows = [row for row in self._tasks.values() if row.account_id == account_id]
        rows.sort(key=lambda row: (row.created_at, row.id), reverse=True)
        return [convert.task(row) for row in rows[:limit]]

    def cancel_task(self, task_id: str, *, account_id: str, callback_body: CallbackBody) -> Task:
        """Raises TaskNotFound, or TaskNotCancellable when the task already ended."""
        with self._lock:
            row = _copy(self._owned(task_id, account_id))
            now = self._clock()
            lifecycle.cancel(row, now)
            return self._commit(_settled(row, charged=0, now=now, callback_body=callback_body))

    # the queue, as workers see it

    def claim(self, *, worker_id: str, lease_s: float) -> Claim | None:
        with self._lock:
            now = self._clock()
            ready = [row for row in self._tasks.values() if lifecycle.is_claimable(row, now)]
            if not ready:
                return None
            oldest = min(ready, key=lambda row: (row.created_at, row.id))
            return lifecycle.start(oldest, worker_id=worker_id, lease_s=lease_s, now=now)

    def heartbeat(
        self, claim: Claim, *, progress: int, estimated_time_s: int, fps: float | None = None
    ) -> Heartbeat:
        """Raises LeaseLost when the lease was taken over or the task ended otherwise."""
        with self._lock:
            row = self._fenced(claim, allow_cancelled=True)
            return lifecycle.beat(
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
    ) -> Task:
        """Raises LeaseLost (and changes nothing, charges nothing) when fenced out."""
        with self._lock:
            row = _copy(self._fenced(claim))
            now = self._clock()
            lifecycle.finish(
                row,
                result_key=result_key,
                result_expires_at=result_expires_at,
                actual_duration_s=actual_duration_s,
                now=now,
                notes=notes,
            )
            charged = convert.to_micro(credits_charged)
            return self._commit(
                _settled(row, charged=charged, now=now, callback_body=callback_body)
            )

    def fail(
        self, claim: Claim, *, error: TaskError, retry: bool, callback_body: CallbackBody
    ) -> Task:
        """Raises LeaseLost (and changes nothing) when fenced out."""
        with self._lock:
            row = self._fenced(claim)
            now = self._clock()
            if retry and lifecycle.may_run_again(row, self._max_attempts):
                return self._commit(_requeued(row, now, back_off=True))
            return self._commit(_failed(row, error, now, callback_body))

    def reap(self, *, callback_body: CallbackBody, max_attempts: int | None = None) -> list[Task]:
        limit = self._max_attempts if max_attempts is None else max_attempts
        with self._lock:
            now = self._clock()
            expired = [row for row in self._tasks.values() if _lease_expired(row, now)]
            expired.sort(key=lambda row: (row.account_id, row.id))
            changes = [
                _requeued(row, now)
                if lifecycle.may_run_again(row, limit)
                else _failed(row, lifecycle.ABANDONED_ERROR, now, callback_body)
                for row in expired
            ]
            return [self._commit(change) for change in changes]

    # results and metrics

    def expired_results(self, *, now: datetime) -> list[Task]:
        with self._lock:
            return [convert.task(row) for row in self._tasks.values() if _result_expired(row, now)]

    def forget_result(self, task_id: str) -> None:
        """Drop the result key (the file is gone); the expiry stays to tell clients why.

        Raises TaskNotFound when there is no such task.
        """
        with self._lock:
            self._owned(task_id, None).result_key = None

    def count_by_status(self) -> Mapping[TaskStatus, int]:
        counts = dict.fromkeys(TaskStatus, 0)
        with self._lock:
            for row in self._tasks.values():
                counts[TaskStatus(row.status)] += 1
        return counts

    def queue_depth(self) -> int:
        with self._lock:
            return sum(row.status == TaskStatus.PENDING for row in self._tasks.values())

    def ping(self) -> None:
        """Never raises: there is no database to lose."""

    # helpers: the caller holds the lock

    def _owned(self, task_id: str, account_id: str | None) -> TaskRow:
        return lifecycle.owned(self._tasks.get(task_id), task_id, account_id)

    def _fenced(self, claim: Claim, *, allow_cancelled: bool = False) -> TaskRow:
        return lifecycle.fenced(
            self._tasks.get(claim.task.id), claim, allow_cancelled=allow_cancelled
        )

    def _key_is_live(self, new: NewTask, idempotency: IdempotencyRecord | None) -> bool:
        if idempotency is None:
            return False
        record = self._idempotency.get((new.account_id, idempotency.key))
        return record is not None and record.created_at >= new.created_at - IDEMPOTENCY_WINDOW

    def _remember(self, new: NewTask, record: IdempotencyRecord) -> None:
        # As the SQL store does: this account's keys older than the replay
        # window are dropped, which bounds them and lets such a key be reused.
        stale_before = new.created_at - IDEMPOTENCY_WINDOW
        for slot, old in list(self._idempotency.items()):
            if old.account_id == new.account_id and old.created_at < stale_before:
                del self._idempotency[slot]
        self._idempotency[(new.account_id, record.key)] = lifecycle.new_idempotency_row(new, record)

    def _commit(self, change: _Change) -> Task:
        """Store a worked-out change: the row, its ledger rows, its callback."""
        self._tasks[change.row.id] = change.row
        for entry in change.entries:
            self._post(entry)
        if change.callback is not None:
            self._queue_callback(change.callback)
        return convert.task(change.row)


def _copy(row: TaskRow) -> TaskRow:
    return TaskRow(**{key: getattr(row, key) for key in _TASK_COLUMNS})


def _settled(row: TaskRow, *, charged: int, now: datetime, callback_body: CallbackBody) -> _Change:
    """An ended row (a copy) settled: charged, refunded, its callback rendered.

    Raises whatever ``callback_body`` raises, before anything is stored.
    """
    entries = tuple(ledger.settlement(row, charged=charged, at=now))
    callback = outbox.pending_callback(row, callback_body=callback_body, at=now)
    return _Change(row=row, entries=entries, callback=callback)


def _requeued(row: TaskRow, now: datetime, *, back_off: bool = False) -> _Change:
    copy = _copy(row)
    (lifecycle.back_off if back_off else lifecycle.requeue)(copy, now)
    return _Change(row=copy)


def _failed(row: TaskRow, error: TaskError, now: datetime, callback_body: CallbackBody) -> _Change:
    copy = _copy(row)
    lifecycle.end(copy, TaskStatus.FAILED, now, error=error)
    return _settled(copy, charged=0, now=now, callback_body=callback_body)


def _clash(idempotency: IdempotencyRecord | None) -> UpresError:
    # SqlTaskStore reads any unique-key refusal of an idempotent submission as
    # the key's conflict, and of another one as a database error.
    if idempotency is None:
        return unique_violation()
    return lifecycle.key_in_use()


def _lease_expired(row: TaskRow, now: datetime) -> bool:
    expires = row.lease_expires_at
    return row.status == TaskStatus.PROCESSING and expires is not None and expires < now


def _result_expired(row: TaskRow, now: datetime) -> bool:
    expires = row.result_expires_at
    return (
        row.status == TaskStatus.COMPLETED
        and row.result_key is not None
        and expires is not None
        and expires <= now
    )
