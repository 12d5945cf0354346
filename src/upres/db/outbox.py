"""The callback outbox: rows written with a task's settlement, drained by dispatchers.

A dispatcher claims due rows under a lease, one attempt per claim, so
dispatchers sharing a database (several ``upres worker`` machines) never
deliver a row at the same time.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta

from sqlalchemy import ColumnElement, or_, select
from sqlalchemy.orm import Session

from upres.clock import Clock
from upres.db import convert
from upres.db.tables import CallbackAttemptRow, OutboxRow, TaskRow
from upres.db.unit import Database
from upres.domain.records import CallbackAttempt, CallbackBody, OutboxItem
from upres.errors import LeaseLost, NotFound


def enqueue(session: Session, row: TaskRow, *, callback_body: CallbackBody, at: datetime) -> None:
    """Queue the task's callback (when it has a URL), rendered from its settled state."""
    item = pending_callback(row, callback_body=callback_body, at=at)
    if item is None:
        return
    session.flush()
    session.add(item)


def pending_callback(
    row: TaskRow, *, callback_body: CallbackBody, at: datetime
) -> OutboxRow | None:
    """The outbox row for a settled task, due at ``at``; None when it has no callback URL.

    Not yet written (its id comes when it is). Raises whatever ``callback_body`` raises.
    """
    if row.callback_url is None:
        return None
    return OutboxRow(
        task_id=row.id,
        account_id=row.account_id,
        url=row.callback_url,
        body=callback_body(convert.task(row)),
        attempts=0,
        next_attempt_at=at,
        delivered=False,
        done_at=None,
        created_at=at,
        message_id=new_message_id(),
    )


def new_message_id() -> str:
    """A ``webhook-id`` unique across databases and deployments: a receiver that
    dedupes on it must never drop an event because another server (or this one,
    after a reset) counted to the same number."""
    return f"msg_{uuid.uuid4().hex}"


def is_due(row: OutboxRow, now: datetime) -> bool:
    """Whether ``row`` may be claimed at ``now``: not done, its next attempt
    time come, and no lease on it, or only one that has run out.

    ``due`` is the same rule as a SQL condition; change them together.
    """
    leased = row.lease_expires_at is not None and row.lease_expires_at > now
    return row.done_at is None and row.next_attempt_at <= now and not leased


def due(now: datetime) -> ColumnElement[bool]:
    """``is_due`` as a WHERE condition on the outbox table."""
    return (
        OutboxRow.done_at.is_(None)
        & (OutboxRow.next_attempt_at <= now)
        & or_(OutboxRow.lease_expires_at.is_(None), OutboxRow.lease_expires_at <= now)
    )


def lease(row: OutboxRow, *, dispatcher_id: str, lease_s: float, now: datetime) -> OutboxItem:
    """Hand a due row to ``dispatcher_id`` for one attempt, until ``lease_s`` from
    now; returns the item as the dispatcher gets it."""
    row.lease_owner = dispatcher_id
    row.lease_expires_at = now + timedelta(seconds=lease_s)
    return convert.outbox_item(row)


def held(row: OutboxRow | None, attempt: CallbackAttempt, *, dispatcher_id: str) -> OutboxRow:
    """``row`` (``attempt``'s item), while ``dispatcher_id`` still holds it for ``attempt``.

    A lease that ran out still holds until another dispatcher claims the row.
    Raises NotFound when there is no such item, LeaseLost when another
    dispatcher claimed it since, or it was recorded or ended otherwise.
    """
    if row is None:
        raise NotFound(f"No callback {attempt.outbox_id}")
    if (
        row.lease_owner != dispatcher_id
        or row.done_at is not None
        or row.attempts + 1 != attempt.attempt
    ):
        raise LeaseLost(
            f"Lease on callback {row.id} (attempt {attempt.attempt}) was lost by {dispatcher_id}"
        )
    return row


def record_attempt(
    item: OutboxRow, attempt: CallbackAttempt, *, next_attempt_at: datetime | None
) -> CallbackAttemptRow:
    """Count ``attempt`` on ``item`` and release its lease: done once delivered or
    given up (``next_attempt_at`` None), else due again then, to any dispatcher.
    Returns the attempt's log row, not yet written."""
    item.attempts += 1
    item.lease_owner = None
    item.lease_expires_at = None
    if attempt.delivered:
        item.delivered = True
        item.done_at = attempt.at
    elif next_attempt_at is None:
        item.done_at = attempt.at
    else:
        item.next_attempt_at = next_attempt_at
    return CallbackAttemptRow(
        outbox_id=attempt.outbox_id,
        attempt=attempt.attempt,
        status_code=attempt.status_code,
        error=attempt.error,
        delivered=attempt.delivered,
        at=attempt.at,
    )


class SqlCallbacks:
    """Delivery bookkeeping: what is due, and every attempt made."""

    def __init__(self, db: Database, clock: Clock) -> None:
        self._db = db
        self._clock = clock

    def claim_callbacks(
        self, *, dispatcher_id: str, limit: int, lease_s: float
    ) -> list[OutboxItem]:
        """Lease up to ``limit`` due items, the longest due first, in one write
        transaction: SQLite runs it under ``BEGIN IMMEDIATE``, PostgreSQL skips
        rows another claimer has locked, as ``SqlTaskStore.claim`` does."""
        now = self._clock()
        query = (
            select(OutboxRow)
            .where(due(now))
            .order_by(OutboxRow.next_attempt_at, OutboxRow.id)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
        with self._db.write() as session:
            rows = session.scalars(query).all()
            return [
                lease(row, dispatcher_id=dispatcher_id, lease_s=lease_s, now=now) for row in rows
            ]

    def record_callback_attempt(
        self, attempt: CallbackAttempt, *, dispatcher_id: str, next_attempt_at: datetime | None
    ) -> None:
        """Raises NotFound, or LeaseLost (and records nothing), as ``held``."""
        with self._db.write() as session:
            row = session.get(OutboxRow, attempt.outbox_id, with_for_update=True)
            item = held(row, attempt, dispatcher_id=dispatcher_id)
            session.add(record_attempt(item, attempt, next_attempt_at=next_attempt_at))

    def callback_attempts(self, outbox_id: int) -> list[CallbackAttempt]:
        query = (
            select(CallbackAttemptRow)
            .where(CallbackAttemptRow.outbox_id == outbox_id)
            .order_by(CallbackAttemptRow.id)
        )
        with self._db.read() as session:
            return [convert.callback_attempt(row) for row in session.scalars(query)]

    def outbox_for_task(self, task_id: str) -> list[OutboxItem]:
        query = select(OutboxRow).where(OutboxRow.task_id == task_id).order_by(OutboxRow.id)
        with self._db.read() as session:
            return [convert.outbox_item(row) for row in session.scalars(query)]
