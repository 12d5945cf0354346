"""Fixtures shared by the store and service tests: each store on a fake clock.

``store`` runs a test once on a real SQLite store and once on the in-memory
one; ``sqlite_only`` (from tests.stores) keeps a test about SQLite itself to
the first. tests/integration/test_store_postgres.py re-collects the store tests
with its own fixtures of the same names, so they run again on PostgreSQL.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.stores import FakeClock, sqlite_store
from upres.domain.accounts import Account
from upres.jobs.memory import MemoryTaskStore
from upres.jobs.store import TaskStore


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture(params=["sqlite", "memory"])
def store(request: pytest.FixtureRequest, tmp_path: Path, clock: FakeClock) -> Iterator[TaskStore]:
    if request.param == "memory":
        yield MemoryTaskStore(clock=clock)
        return
    store = sqlite_store(tmp_path / "upres.db", clock)
    yield store
    store.close()


@pytest.fixture
def account(store: TaskStore) -> Account:
    return store.create_account(user_group="default", credits=1000, webhook_secret="whsec_test")
