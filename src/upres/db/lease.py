"""The lease on a queued row, the same for tasks and chunks: start, fence, beat,
release, requeue and back off.

A row is claimed by one worker for one attempt at a time: ``start`` counts the
attempt and names the owner, ``holds`` is the fence every write of that worker
passes (owner and attempt both match, so a worker whose lease was taken over
changes nothing), ``renew`` is the heartbeat, and ``requeue`` / ``back_off``
put the row back in the queue, at once or after the attempt's retry delay.
Pure functions of the row: no session, no I/O. What else a task or a chunk
records on each step lives in ``task_rows`` and ``chunk_rows``.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Protocol

# After a transient failure (the input server down, a stage crashed) the n-th
# retry waits the n-th of these (the last repeats): soon enough for a blip,
# not back to back against a struggling server.
RETRY_DELAYS_S = (10.0, 30.0)


class LeasedRow(Protocol):
    """The lease columns a task row and a chunk row share."""

    attempts: int
    lease_owner: str | None
    lease_expires_at: datetime | None
    not_before: datetime | None
    updated_at: datetime


def start(row: LeasedRow, *, worker_id: str, lease_s: float, now: datetime) -> datetime:
    """Lease ``row`` to ``worker_id`` for its next attempt; returns the expiry."""
    expires = now + timedelta(seconds=lease_s)
    row.attempts += 1
    row.lease_owner = worker_id
    row.lease_expires_at = expires
    row.updated_at = now
    return expires


def holds(row: LeasedRow, *, worker_id: str, attempt: int) -> bool:
    """Whether ``worker_id``'s ``attempt`` still holds ``row``'s lease (the fence)."""
    return row.lease_owner == worker_id and row.attempts == attempt


def renew(row: LeasedRow, *, lease_s: float, now: datetime) -> datetime:
    """Extend a held lease by ``lease_s`` from ``now``; returns the new expiry."""
    expires = now + timedelta(seconds=lease_s)
    row.lease_expires_at = expires
    row.updated_at = now
    return expires


def release(row: LeasedRow, now: datetime) -> None:
    """End the lease: no owner, no expiry."""
    row.lease_owner = None
    row.lease_expires_at = None
    row.updated_at = now


def requeue(row: LeasedRow, now: datetime) -> None:
    """Release the lease and make the row claimable at once; attempts are kept."""
    release(row, now)
    row.not_before = None


def back_off(row: LeasedRow, now: datetime) -> None:
    """Release the lease after a transient failure: claimable again after the
    failed attempt's retry delay."""
    release(row, now)
    row.not_before = now + retry_delay(row.attempts)


def retry_delay(attempts: int) -> timedelta:
    """How long a row waits after the transient failure of its ``attempts``-th
    attempt (``RETRY_DELAYS_S``)."""
    return timedelta(seconds=RETRY_DELAYS_S[min(attempts, len(RETRY_DELAYS_S)) - 1])
