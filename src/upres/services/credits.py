"""Credits as operators and clients see them: balances and grants.

Reservations, captures and refunds happen inside the store's task
transactions (see ``upres.db.ledger``); this service only reads balances and
adds credits.
"""

from __future__ import annotations

import math
from typing import Protocol

from upres.domain.accounts import Account, LedgerEntry
from upres.errors import InvalidRequest


class AccountLookup(Protocol):
    def get_account(self, account_id: str) -> Account:
        """Raises NotFound when there is no such account."""
        ...


class CreditGrants(AccountLookup, Protocol):
    def grant_credits(self, *, account_id: str, amount: float) -> Account:
        """Raises NotFound when there is no such account."""
        ...


class CreditRecords(CreditGrants, Protocol):
    """Balances, grants and the ledger: what ``CreditService`` needs."""

    def ledger(self, account_id: str) -> list[LedgerEntry]:
        """The account's ledger entries, oldest first."""
        ...


class CreditService:
    def __init__(self, store: CreditRecords) -> None:
        self._store = store

    def balance(self, account_id: str) -> float:
        """Raises NotFound when there is no such account."""
        return self._store.get_account(account_id).balance

    def grant(self, account_id: str, amount: float) -> Account:
        """Add ``amount`` credits.

        Raises InvalidRequest unless it is a positive finite number, NotFound
        when there is no such account.
        """
        if not (math.isfinite(amount) and amount > 0):
            raise InvalidRequest("amount must be a positive number", param="amount")
        return self._store.grant_credits(account_id=account_id, amount=amount)

    def history(self, account_id: str) -> list[LedgerEntry]:
        return self._store.ledger(account_id)
