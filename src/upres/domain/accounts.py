"""Accounts, API keys and ledger entries. Pure types."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum


@dataclass(frozen=True, kw_only=True)
class Account:
    """Who pays: a credit balance shared by the account's keys."""

    id: str
    user_group: str
    balance: float
    webhook_secret: str
    created_at: datetime


@dataclass(frozen=True, kw_only=True)
class ApiKey:
    """A key as stored: never the key itself, only its id and what it may do.

    ``prefix`` is the first few characters of the secret, kept so people can
    tell their keys apart in listings; it is far too short to guess the rest.
    """

    id: str
    account_id: str
    user_group: str
    allowed_models: tuple[str, ...]
    revoked: bool
    created_at: datetime
    prefix: str = ""

    def may_use(self, model: str) -> bool:
        return model in self.allowed_models


@dataclass(frozen=True, kw_only=True)
class CreatedKey:
    """A new key: the secret is shown once and never stored."""

    secret: str
    key: ApiKey


class LedgerKind(StrEnum):
    """Kinds of balance movement. Amounts are always positive."""

    GRANT = "grant"
    RESERVE = "reserve"
    CAPTURE = "capture"
    REFUND = "refund"


@dataclass(frozen=True, kw_only=True)
class LedgerEntry:
    """One movement of credits, optionally tied to a task."""

    id: int
    account_id: str
    task_id: str | None
    kind: LedgerKind
    amount: float
    created_at: datetime
