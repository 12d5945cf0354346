"""Rows to domain values, and credits to and from stored micro-credits."""

from __future__ import annotations

from typing import get_args

from upres.db.tables import (
    MICRO,
    AccountRow,
    ApiKeyRow,
    CallbackAttemptRow,
    LedgerRow,
    OutboxRow,
    TaskRow,
)
from upres.domain.accounts import Account, ApiKey, LedgerEntry, LedgerKind
from upres.domain.media import VideoCodec
from upres.domain.records import CallbackAttempt, OutboxItem
from upres.domain.tasks import Factor, Task, TaskError, TaskStatus


def to_micro(credits: float) -> int:
    """Credits as whole micro-credits (pricing already rounds to 6 decimals)."""
    return round(credits * MICRO)


def from_micro(micro: int) -> float:
    return micro / MICRO


def account(row: AccountRow) -> Account:
    return Account(
        id=row.id,
        user_group=row.user_group,
        balance=from_micro(row.balance),
        webhook_secret=row.webhook_secret,
        created_at=row.created_at,
    )


def api_key(row: ApiKeyRow, *, user_group: str) -> ApiKey:
    return ApiKey(
        id=row.id,
        account_id=row.account_id,
        user_group=user_group,
        allowed_models=tuple(row.allowed_models),
        revoked=row.revoked_at is not None,
        created_at=row.created_at,
        prefix=row.prefix,
    )


def task(row: TaskRow) -> Task:
    error = None
    if row.error_code is not None:
        error = TaskError(code=row.error_code, message=row.error_message or "")
    charged = None if row.credits_charged is None else from_micro(row.credits_charged)
    return Task(
        id=row.id,
        account_id=row.account_id,
        model=row.model,
        status=TaskStatus(row.status),
        progress=row.progress,
        factor=Factor(row.factor),
        input_url=row.input_url,
        callback_url=row.callback_url,
        video_duration_s=row.video_duration_s,
        credits_reserved=from_micro(row.credits_reserved),
        credits_charged=charged,
        estimated_time_s=row.estimated_time_s,
        user_group=row.user_group,
        created_at=row.created_at,
        updated_at=row.updated_at,
        finished_at=row.finished_at,
        result_key=row.result_key,
        result_expires_at=row.result_expires_at,
        error=error,
        attempts=row.attempts,
        cancel_requested=row.cancel_requested,
        notes=tuple(row.notes.split("\n")) if row.notes else (),
        fps=row.fps,
        result_codec=_video_codec(row.result_codec),
        network=row.network,
        denoise=row.denoise,
        frame_rate=row.frame_rate,
        slowmo=row.slowmo,
    )


def _video_codec(name: str | None) -> VideoCodec | None:
    """A stored codec name; None for none, or for a name this upres does not write."""
    return next((codec for codec in get_args(VideoCodec) if codec == name), None)


def notes_text(notes: tuple[str, ...]) -> str | None:
    """Task notes as the ``tasks.notes`` column stores them (one per line; None for none)."""
    return "\n".join(note.replace("\n", " ") for note in notes) or None


def ledger_entry(row: LedgerRow) -> LedgerEntry:
    return LedgerEntry(
        id=row.id,
        account_id=row.account_id,
        task_id=row.task_id,
        kind=LedgerKind(row.kind),
        amount=from_micro(row.amount),
        created_at=row.created_at,
    )


def outbox_item(row: OutboxRow) -> OutboxItem:
    return OutboxItem(
        id=row.id,
        task_id=row.task_id,
        account_id=row.account_id,
        url=row.url,
        body=row.body,
        attempts=row.attempts,
        next_attempt_at=row.next_attempt_at,
        message_id=row.message_id,
    )


def callback_attempt(row: CallbackAttemptRow) -> CallbackAttempt:
    return CallbackAttempt(
        outbox_id=row.outbox_id,
        attempt=row.attempt,
        status_code=row.status_code,
        error=row.error,
        delivered=row.delivered,
        at=row.at,
    )
