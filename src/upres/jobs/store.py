"""The store interface: tasks, queue leases, credits ledger and callback outbox.

One interface, so the same service and worker code runs on SQLite (one
machine) and PostgreSQL (many machines). Every method is one transaction.
Every worker write takes a ``Claim`` and is fenced by lease owner and attempt:
a worker whose lease was taken over gets ``LeaseLost`` and changes nothing.
A task's final status, its ledger settlement and its callback outbox row
commit together.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from upres.domain.accounts import Account, ApiKey, LedgerEntry
from upres.domain.tasks import Factor, Task, TaskError, TaskStatus


@dataclass(frozen=True, kw_only=True)
class NewTask:
    """A validated, probed, priced submission, ready to insert."""

    id: str
    account_id: str
    model: str
    factor: Factor
    input_url: str
    callback_url: str | None
    video_duration_s: float
    credits_reserved: float
    estimated_time_s: int
    user_group: str
    created_at: datetime


@dataclass(frozen=True, kw_only=True)
class Claim:
    """A worker's lease on one attempt of a task."""

    task: Task
    worker_id: str
    attempt: int
    lease_expires_at: datetime


@dataclass(frozen=True, kw_only=True)
class Heartbeat:
    """What a heartbeat tells the worker: stop when ``cancelled``."""

    cancelled: bool
    lease_expires_at: datetime


@dataclass(frozen=True, kw_only=True)
class OutboxItem:
    """A callback to deliver: the task's public JSON body, frozen at settlement."""

    id: int
    task_id: str
    account_id: str
    url: str
    body: str
    attempts: int
    next_attempt_at: datetime


@dataclass(frozen=True, kw_only=True)
class CallbackAttempt:
    """One delivery try of an outbox item, recorded whatever its outcome."""

    outbox_id: int
    attempt: int
    status_code: int | None
    error: str | None
    delivered: bool
    at: datetime


class TaskStore(Protocol):
    """System of record. Raises TaskNotFound, InsufficientQuota, LeaseLost,
    TaskNotCancellable, Unauthorized as each method documents."""

    # accounts and keys
    def create_account(self, *, user_group: str, credits: float) -> Account: ...
    def get_account(self, account_id: str) -> Account: ...
    def create_key(
        self, *, account_id: str, key_hash: str, allowed_models: tuple[str, ...]
    ) -> ApiKey: ...
    def key_by_hash(self, key_hash: str) -> ApiKey | None: ...
    def list_keys(self) -> list[ApiKey]: ...
    def revoke_key(self, key_id: str) -> ApiKey: ...
    def grant_credits(self, *, account_id: str, amount: float) -> Account: ...
    def ledger(self, account_id: str) -> list[LedgerEntry]: ...

    # tasks, as clients see them
    def create_task(self, new: NewTask) -> Task:
        """Insert a pending task and reserve its credits atomically.

        Raises InsufficientQuota when the balance does not cover the reservation.
        """
        ...

    def get_task(self, task_id: str, *, account_id: str | None = None) -> Task:
        """Raises TaskNotFound when absent or owned by another account."""
        ...

    def cancel_task(self, task_id: str, *, account_id: str, callback_body: CallbackBody) -> Task:
        """Cancel a pending or processing task now, refund it, queue its callback.

        Raises TaskNotCancellable when it already ended.
        """
        ...

    # the queue, as workers see it
    def claim(self, *, worker_id: str, lease_s: float) -> Claim | None: ...
    def heartbeat(self, claim: Claim, *, progress: int, estimated_time_s: int) -> Heartbeat: ...
    def complete(
        self,
        claim: Claim,
        *,
        result_key: str,
        result_expires_at: datetime,
        actual_duration_s: float,
        credits_charged: float,
        callback_body: CallbackBody,
    ) -> Task: ...
    def fail(self, claim: Claim, *, error: TaskError, retry: bool, callback_body: CallbackBody) -> Task:
        """Retry puts the task back in the queue while attempts remain; else it
        ends failed with a full refund and a callback."""
        ...

    def reap(self, *, max_attempts: int, callback_body: CallbackBody) -> list[Task]:
        """Requeue tasks whose lease expired, or fail and refund them once
        ``max_attempts`` is spent. Returns the tasks it touched."""
        ...

    # callbacks
    def due_callbacks(self, *, limit: int) -> list[OutboxItem]: ...
    def record_callback_attempt(
        self, attempt: CallbackAttempt, *, next_attempt_at: datetime | None
    ) -> None: ...

    # results and metrics
    def expired_results(self, *, now: datetime) -> list[Task]: ...
    def forget_result(self, task_id: str) -> None: ...
    def count_by_status(self) -> Mapping[TaskStatus, int]: ...
    def ping(self) -> None:
        """Raises ServiceUnavailable when the database does not answer."""
        ...


class CallbackBody(Protocol):
    """Renders the JSON body a callback carries (the task query response)."""

    def __call__(self, task: Task) -> str: ...
