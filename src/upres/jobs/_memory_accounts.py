"""Accounts, keys, the ledger, the callback outbox and throughput in memory: the
bookkeeping half of ``MemoryTaskStore`` (what ``SqlAccounts``, ``SqlCallbacks``
and ``SqlThroughput`` are to ``SqlTaskStore``), built from the same row
functions so both keep the same books.
"""

from __future__ import annotations

import threading
from datetime import datetime

from upres.db import convert, ledger, outbox, throughput
from upres.db.accounts import new_account, new_key
from upres.db.tables import (
    AccountRow,
    ApiKeyRow,
    CallbackAttemptRow,
    LedgerRow,
    OutboxRow,
    ThroughputRow,
)
from upres.domain.accounts import Account, ApiKey, LedgerEntry, LedgerKind
from upres.domain.tasks import Factor
from upres.errors import NotFound, ServiceUnavailable
from upres.jobs.store import CallbackAttempt, Clock, OutboxItem, StoredKey


def unique_violation() -> ServiceUnavailable:
    """What ``SqlTaskStore`` raises when a unique key refuses a row (a duplicate
    key hash or task id): the insert fails as a database error."""
    return ServiceUnavailable("database error: IntegrityError")


class MemoryAccounts:
    """The store's tables and its one lock; every public method holds the lock
    for its whole run, the private helpers expect the caller to hold it."""

    def __init__(self, clock: Clock) -> None:
        self._lock = threading.Lock()
        self._clock = clock
        self._accounts: dict[str, AccountRow] = {}
        self._keys: dict[str, ApiKeyRow] = {}
        self._ledger: list[LedgerRow] = []
        self._outbox: dict[int, OutboxRow] = {}
        self._attempts: list[CallbackAttemptRow] = []
        self._throughput: dict[Factor, ThroughputRow] = {}

    # accounts and keys

    def create_account(self, *, user_group: str, credits: float, webhook_secret: str) -> Account:
        with self._lock:
            now = self._clock()
            row = new_account(user_group=user_group, webhook_secret=webhook_secret, now=now)
            self._accounts[row.id] = row
            if credits > 0:
                amount = convert.to_micro(credits)
                self._post(
                    ledger.entry(account_id=row.id, kind=LedgerKind.GRANT, amount=amount, at=now)
                )
            return convert.account(row)

    def get_account(self, account_id: str) -> Account:
        """Raises NotFound when there is no such account."""
        with self._lock:
            return convert.account(self._account(account_id))

    def create_key(
        self, *, account_id: str, key_hash: str, prefix: str, allowed_models: tuple[str, ...]
    ) -> ApiKey:
        """Raises NotFound when the account does not exist, ServiceUnavailable
        (as the SQL store's unique index) when a key already has this hash."""
        with self._lock:
            account = self._account(account_id)
            if any(key.key_hash == key_hash for key in self._keys.values()):
                raise unique_violation()
            row = new_key(
                account_id=account_id,
                key_hash=key_hash,
                prefix=prefix,
                allowed_models=allowed_models,
                now=self._clock(),
            )
            self._keys[row.id] = row
            return convert.api_key(row, user_group=account.user_group)

    def key_by_hash(self, key_hash: str) -> StoredKey | None:
        with self._lock:
            for row in self._keys.values():
                if row.key_hash == key_hash:
                    return StoredKey(key=self._api_key(row), key_hash=row.key_hash)
            return None

    def list_keys(self, account_id: str | None = None) -> list[ApiKey]:
        with self._lock:
            rows = sorted(self._keys.values(), key=lambda row: (row.created_at, row.id))
            return [
                self._api_key(row)
                for row in rows
                if account_id is None or row.account_id == account_id
            ]

    def revoke_key(self, key_id: str) -> ApiKey:
        """Raises NotFound when there is no such key. Revoking twice keeps the first time."""
        with self._lock:
            row = self._keys.get(key_id)
            if row is None:
                raise NotFound(f"No API key {key_id!r}")
            if row.revoked_at is None:
                row.revoked_at = self._clock()
            return self._api_key(row)

    # the ledger

    def grant_credits(self, *, account_id: str, amount: float) -> Account:
        """Raises NotFound when there is no such account."""
        with self._lock:
            account = self._account(account_id)
            self._post(
                ledger.entry(
                    account_id=account_id,
                    kind=LedgerKind.GRANT,
                    amount=convert.to_micro(amount),
                    at=self._clock(),
                )
            )
            return convert.account(account)

    def ledger(self, account_id: str) -> list[LedgerEntry]:
        with self._lock:
            return [
                convert.ledger_entry(row) for row in self._ledger if row.account_id == account_id
            ]

    def credits_captured_total(self) -> float:
        with self._lock:
            captured = (row.amount for row in self._ledger if row.kind == LedgerKind.CAPTURE)
            return convert.from_micro(sum(captured))

    # callbacks

    def claim_callbacks(
        self, *, dispatcher_id: str, limit: int, lease_s: float
    ) -> list[OutboxItem]:
        with self._lock:
            now = self._clock()
            due = [row for row in self._outbox.values() if outbox.is_due(row, now)]
            due.sort(key=lambda row: (row.next_attempt_at, row.id))
            return [
                outbox.lease(row, dispatcher_id=dispatcher_id, lease_s=lease_s, now=now)
                for row in due[:limit]
            ]

    def record_callback_attempt(
        self, attempt: CallbackAttempt, *, dispatcher_id: str, next_attempt_at: datetime | None
    ) -> None:
        """Raises NotFound, or LeaseLost (and records nothing), as ``outbox.held``."""
        with self._lock:
            item = outbox.held(
                self._outbox.get(attempt.outbox_id), attempt, dispatcher_id=dispatcher_id
            )
            self._attempts.append(
                outbox.record_attempt(item, attempt, next_attempt_at=next_attempt_at)
            )

    def callback_attempts(self, outbox_id: int) -> list[CallbackAttempt]:
        with self._lock:
            return [
                convert.callback_attempt(row)
                for row in self._attempts
                if row.outbox_id == outbox_id
            ]

    def outbox_for_task(self, task_id: str) -> list[OutboxItem]:
        with self._lock:
            return [
                convert.outbox_item(row) for row in self._outbox.values() if row.task_id == task_id
            ]

    # throughput

    def throughput(self, factor: Factor) -> float | None:
        with self._lock:
            row = self._throughput.get(factor)
            return None if row is None else row.mpix_per_s

    def record_throughput(self, factor: Factor, mpix_per_s: float) -> None:
        """Fold one measurement in; nonsense (non-positive, infinite, NaN) is ignored."""
        if not throughput.is_measurement(mpix_per_s):
            return
        with self._lock:
            row = self._throughput.get(factor)
            self._throughput[factor] = throughput.fold(row, factor, mpix_per_s, now=self._clock())

    # helpers: the caller holds the lock

    def _account(self, account_id: str) -> AccountRow:
        """Raises NotFound when there is no such account."""
        row = self._accounts.get(account_id)
        if row is None:
            raise NotFound(f"No account {account_id!r}")
        return row

    def _api_key(self, row: ApiKeyRow) -> ApiKey:
        return convert.api_key(row, user_group=self._accounts[row.account_id].user_group)

    def _post(self, row: LedgerRow) -> None:
        """Write a ledger row and move its (existing) account's balance by it."""
        row.id = len(self._ledger) + 1
        self._accounts[row.account_id].balance += ledger.balance_change(row)
        self._ledger.append(row)

    def _queue_callback(self, row: OutboxRow) -> None:
        row.id = len(self._outbox) + 1
        self._outbox[row.id] = row
