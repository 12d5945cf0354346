"""Fixtures shared by the store and service tests: a real SQLite store on a fake clock.

tests/integration/test_store_postgres.py re-collects the store tests with its
own fixtures of the same names, so they run again on PostgreSQL.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.stores import FakeClock, sqlite_store
from upres.db.task_store import SqlTaskStore
from upres.domain.accounts import Account


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def store(tmp_path: Path, clock: FakeClock) -> Iterator[SqlTaskStore]:
    store = sqlite_store(tmp_path / "upres.db", clock)
    yield store
    store.close()


@pytest.fixture
def account(store: SqlTaskStore) -> Account:
    return store.create_account(user_group="default", credits=1000, webhook_secret="whsec_test")
