"""Ending a task for good in a transaction: its status, its settlement and its
callback, together (the one way both the task queue and the chunks fail a task)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.orm import Session

from upres.db import ledger, outbox, task_rows
from upres.db.tables import TaskRow
from upres.domain.records import CallbackBody
from upres.domain.tasks import TaskError, TaskStatus


def fail_task(
    session: Session,
    row: TaskRow,
    error: TaskError,
    *,
    now: datetime,
    callback_body: CallbackBody,
) -> None:
    """End ``row`` failed with ``error``, refund it whole and queue its callback."""
    task_rows.end(row, TaskStatus.FAILED, now, error=error)
    ledger.settle(session, row, charged=0, at=now)
    outbox.enqueue(session, row, callback_body=callback_body, at=now)
