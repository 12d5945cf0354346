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
from datetime import datetime
from typing import Protocol

from upres.domain.accounts import Account, ApiKey, LedgerEntry
from upres.domain.records import (
    CallbackAttempt,
    CallbackBody,
    Claim,
    Heartbeat,
    IdempotencyRecord,
    IdempotentHit,
    NewTask,
    OutboxItem,
    StoredKey,
)
from upres.domain.tasks import Factor, Task, TaskError, TaskStatus


class TaskStore(Protocol):
    """System of record. Raises TaskNotFound, NotFound, InsufficientQuota, LeaseLost,
    TaskNotCancellable, IdempotencyConflict as each method documents, and
    ServiceUnavailable whenever the database fails."""

    # accounts and keys
    def create_account(self, *, user_group: str, credits: float, webhook_secret: str) -> Account:
        """A new account holding ``credits`` (recorded as a grant when positive)."""
        ...

    def get_account(self, account_id: str) -> Account:
        """Raises NotFound when there is no such account."""
        ...

    def create_key(
        self, *, account_id: str, key_hash: str, prefix: str, allowed_models: tuple[str, ...]
    ) -> ApiKey:
        """Raises NotFound when the account does not exist."""
        ...

    def key_by_hash(self, key_hash: str) -> StoredKey | None:
        """The key with this hash, or None."""
        ...

    def list_keys(self, account_id: str | None = None) -> list[ApiKey]: ...
    def revoke_key(self, key_id: str) -> ApiKey:
        """Raises NotFound when there is no such key."""
        ...

    def grant_credits(self, *, account_id: str, amount: float) -> Account:
        """Raises NotFound when there is no such account."""
        ...

    def ledger(self, account_id: str) -> list[LedgerEntry]: ...

    # tasks, as clients see them
    def create_task(self, new: NewTask, *, idempotency: IdempotencyRecord | None = None) -> Task:
        """Insert a pending task and reserve its credits atomically.

        Raises InsufficientQuota when the balance does not cover the reservation,
        IdempotencyConflict when another submission just claimed the same key.
        """
        ...

    def find_idempotent(
        self, *, account_id: str, key: str, since: datetime
    ) -> IdempotentHit | None:
        """The submission made with ``key`` at or after ``since``, if any."""
        ...

    def get_task(self, task_id: str, *, account_id: str | None = None) -> Task:
        """Raises TaskNotFound when absent or owned by another account."""
        ...

    def list_tasks(self, *, account_id: str, limit: int) -> list[Task]:
        """The account's ``limit`` newest tasks, newest first."""
        ...

    def cancel_task(self, task_id: str, *, account_id: str, callback_body: CallbackBody) -> Task:
        """Cancel a pending or processing task now, refund it, queue its callback.

        Raises TaskNotFound as ``get_task``; TaskNotCancellable when it already ended.
        """
        ...

    # the queue, as workers see it
    def claim(self, *, worker_id: str, lease_s: float) -> Claim | None:
        """Lease the oldest pending task (attempt + 1), or None when the queue is empty."""
        ...

    def heartbeat(
        self, claim: Claim, *, progress: int, estimated_time_s: int, fps: float | None = None
    ) -> Heartbeat:
        """Renew the lease and record progress; ``cancelled`` once the task was cancelled.

        Raises LeaseLost when the lease was taken over (reaped, re-claimed, ended).
        """
        ...

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
        """End the task completed with ``notes``; capture ``credits_charged`` (at
        most the reservation, the rest refunded) and queue its callback, in one
        transaction.

        Raises LeaseLost (and changes nothing) when the lease was taken over.
        """
        ...

    def fail(
        self, claim: Claim, *, error: TaskError, retry: bool, callback_body: CallbackBody
    ) -> Task:
        """Retry puts the task back in the queue while attempts remain; else it
        ends failed with a full refund and a callback.

        Raises LeaseLost (and changes nothing) when the lease was taken over.
        """
        ...

    def reap(self, *, callback_body: CallbackBody, max_attempts: int | None = None) -> list[Task]:
        """Requeue tasks whose lease expired, or fail and refund them once
        ``max_attempts`` (default: the store's) is spent. Returns the tasks it touched."""
        ...

    # callbacks
    def claim_callbacks(
        self, *, dispatcher_id: str, limit: int, lease_s: float
    ) -> list[OutboxItem]:
        """Lease up to ``limit`` due items (oldest due first) to ``dispatcher_id``
        for one attempt each, ``lease_s`` long.

        A leased item is not due for anyone until its holder records the
        attempt or the lease runs out (a dispatcher that died is thus replaced),
        so concurrent claimers, in any process, get disjoint items.
        """
        ...

    def record_callback_attempt(
        self, attempt: CallbackAttempt, *, dispatcher_id: str, next_attempt_at: datetime | None
    ) -> None:
        """Record the claimed try and release the item: done once delivered, or
        given up when ``next_attempt_at`` is None, else due again then.

        Raises NotFound when the item does not exist, LeaseLost (and records
        nothing) when ``dispatcher_id`` no longer holds it for this attempt:
        another dispatcher claimed it after the lease ran out, or it ended.
        """
        ...

    def callback_attempts(self, outbox_id: int) -> list[CallbackAttempt]: ...
    def outbox_for_task(self, task_id: str) -> list[OutboxItem]: ...

    # throughput, for estimated_time
    def throughput(self, factor: Factor) -> float | None:
        """Measured output megapixels per second for ``factor``, None until measured."""
        ...

    def record_throughput(self, factor: Factor, mpix_per_s: float) -> None:
        """Fold one measurement into the moving average."""
        ...

    # results and metrics
    def expired_results(self, *, now: datetime) -> list[Task]: ...
    def forget_result(self, task_id: str) -> None: ...
    def count_by_status(self) -> Mapping[TaskStatus, int]: ...
    def queue_depth(self) -> int:
        """Number of pending tasks."""
        ...

    def credits_captured_total(self) -> float: ...
    def ping(self) -> None:
        """Raises ServiceUnavailable when the database does not answer."""
        ...
