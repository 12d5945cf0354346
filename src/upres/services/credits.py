"""Credits as operators and clients see them: balances and grants.

Reservations, captures and refunds happen inside the store's task
transactions (see ``upres.db.ledger``); this service only reads balances and
adds credits.
"""

from __future__ import annotations

import math

from upres.domain.accounts import Account, LedgerEntry
from upres.errors import InvalidRequest
from upres.jobs.store import TaskStore


class CreditService:
    def __init__(self, store: TaskStore) -> None:
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
