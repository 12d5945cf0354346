"""Accounts, API keys and credit grants in SQL (the account half of ``SqlTaskStore``)."""

from __future__ import annotations

import secrets
from datetime import datetime

from sqlalchemy import bindparam, func, select
from sqlalchemy.orm import Session

from upres.clock import Clock
from upres.db import convert, ledger
from upres.db.rowread import RowRead
from upres.db.tables import AccountRow, ApiKeyRow, LedgerRow
from upres.db.unit import Database
from upres.domain.accounts import Account, ApiKey, LedgerEntry, LedgerKind
from upres.domain.records import StoredKey
from upres.errors import NotFound

# The credits poll's read: one indexed lookup (see RowRead).
_ACCOUNT_BY_ID = select(AccountRow.__table__).where(AccountRow.__table__.c.id == bindparam("id"))


class SqlAccounts:
    """Accounts, keys and the ledger as clients and operators see them."""

    def __init__(self, db: Database, clock: Clock) -> None:
        self._db = db
        self._clock = clock
        self._account_by_id = RowRead(db.engine, _ACCOUNT_BY_ID)

    def create_account(self, *, user_group: str, credits: float, webhook_secret: str) -> Account:
        now = self._clock()
        row = new_account(user_group=user_group, webhook_secret=webhook_secret, now=now)
        with self._db.write() as session:
            session.add(row)
            session.flush()
            if credits > 0:
                ledger.credit(
                    session,
                    account_id=row.id,
                    kind=LedgerKind.GRANT,
                    amount=convert.to_micro(credits),
                    at=now,
                )
            return convert.account(_account_row(session, row.id))

    def get_account(self, account_id: str) -> Account:
        """Raises NotFound when there is no such account."""
        row = self._account_by_id(id=account_id)
        if row is None:
            raise _no_account(account_id)
        return convert.account(row)

    def create_key(
        self, *, account_id: str, key_hash: str, prefix: str, allowed_models: tuple[str, ...]
    ) -> ApiKey:
        """Raises NotFound when the account does not exist."""
        with self._db.write() as session:
            account = _account_row(session, account_id)
            row = new_key(
                account_id=account_id,
                key_hash=key_hash,
                prefix=prefix,
                allowed_models=allowed_models,
                now=self._clock(),
            )
            session.add(row)
            return convert.api_key(row, user_group=account.user_group)

    def key_by_hash(self, key_hash: str) -> StoredKey | None:
        with self._db.read_one() as session:
            found = session.execute(
                select(ApiKeyRow, AccountRow.user_group)
                .join(AccountRow, AccountRow.id == ApiKeyRow.account_id)
                .where(ApiKeyRow.key_hash == key_hash)
            ).one_or_none()
            if found is None:
                return None
            row, group = found
            return StoredKey(key=convert.api_key(row, user_group=group), key_hash=row.key_hash)

    def list_keys(self, account_id: str | None = None) -> list[ApiKey]:
        query = (
            select(ApiKeyRow, AccountRow.user_group)
            .join(AccountRow, AccountRow.id == ApiKeyRow.account_id)
            .order_by(ApiKeyRow.created_at, ApiKeyRow.id)
        )
        if account_id is not None:
            query = query.where(ApiKeyRow.account_id == account_id)
        with self._db.read() as session:
            return [convert.api_key(row, user_group=group) for row, group in session.execute(query)]

    def revoke_key(self, key_id: str) -> ApiKey:
        """Raises NotFound when there is no such key. Revoking twice keeps the first time."""
        with self._db.write() as session:
            row = session.get(ApiKeyRow, key_id)
            if row is None:
                raise NotFound(f"No API key {key_id!r}")
            if row.revoked_at is None:
                row.revoked_at = self._clock()
            group = _account_row(session, row.account_id).user_group
            return convert.api_key(row, user_group=group)

    def grant_credits(self, *, account_id: str, amount: float) -> Account:
        """Raises NotFound when there is no such account."""
        with self._db.write() as session:
            ledger.credit(
                session,
                account_id=account_id,
                kind=LedgerKind.GRANT,
                amount=convert.to_micro(amount),
                at=self._clock(),
            )
            return convert.account(_account_row(session, account_id))

    def ledger(self, account_id: str) -> list[LedgerEntry]:
        with self._db.read() as session:
            rows = session.scalars(
                select(LedgerRow).where(LedgerRow.account_id == account_id).order_by(LedgerRow.id)
            )
            return [convert.ledger_entry(row) for row in rows]

    def credits_captured_total(self) -> float:
        with self._db.read() as session:
            total = session.scalar(
                select(func.coalesce(func.sum(LedgerRow.amount), 0)).where(
                    LedgerRow.kind == LedgerKind.CAPTURE
                )
            )
            return convert.from_micro(int(total or 0))


def new_account(*, user_group: str, webhook_secret: str, now: datetime) -> AccountRow:
    """A fresh account row with a zero balance (grants are ledger movements)."""
    return AccountRow(
        id=f"acct_{secrets.token_hex(8)}",
        user_group=user_group,
        balance=0,
        webhook_secret=webhook_secret,
        created_at=now,
    )


def new_key(
    *, account_id: str, key_hash: str, prefix: str, allowed_models: tuple[str, ...], now: datetime
) -> ApiKeyRow:
    """A fresh, unrevoked key row."""
    return ApiKeyRow(
        id=f"key_{secrets.token_hex(8)}",
        account_id=account_id,
        key_hash=key_hash,
        prefix=prefix,
        allowed_models=list(allowed_models),
        revoked_at=None,
        created_at=now,
    )


def _account_row(session: Session, account_id: str) -> AccountRow:
    # populate_existing: balances change through Core UPDATEs in this session.
    row = session.get(AccountRow, account_id, populate_existing=True)
    if row is None:
        raise _no_account(account_id)
    return row


def _no_account(account_id: str) -> NotFound:
    return NotFound(f"No account {account_id!r}")
