"""The store tests again, on PostgreSQL, plus what only PostgreSQL can show (SKIP LOCKED).

Runs against the database at ``UPRES_TEST_POSTGRES_URL`` (emptied first!) and
skips when it is unset, e.g.
``UPRES_TEST_POSTGRES_URL=postgresql://postgres@127.0.0.1:5432/upres_test``.
"""

from __future__ import annotations

import os
import threading
import time

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import text

from tests.stores import FakeClock, new_task, postgres_store
from tests.unit import test_store_ledger, test_store_queue, test_store_support
from upres.db.tables import Base
from upres.domain.accounts import Account
from upres.jobs.sql import SqlTaskStore

URL = os.environ.get("UPRES_TEST_POSTGRES_URL")
pytestmark = pytest.mark.skipif(not URL, reason="UPRES_TEST_POSTGRES_URL is not set")

SQLITE_ONLY = {
    "test_migrations_apply_from_empty_and_match_the_tables",
    "test_sqlite_connections_use_wal_and_foreign_keys",
    "test_ping_raises_service_unavailable_when_the_database_is_gone",
    "test_an_outbox_row_written_at_0001_is_still_due_after_upgrading",
}

# The backend-neutral store tests, collected here again so they use this module's
# fixtures (a PostgreSQL store) instead of their own (a SQLite file).
for _module in (test_store_queue, test_store_ledger, test_store_support):
    for _name, _test in vars(_module).items():
        if _name.startswith("test_") and _name not in SQLITE_ONLY:
            globals()[_name] = _test


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def store(clock):
    assert URL is not None
    store = postgres_store(URL, clock)
    yield store
    store.close()


@pytest.fixture
def account(store: SqlTaskStore) -> Account:
    return store.create_account(user_group="default", credits=1000, webhook_secret="whsec_test")


def test_claim_skips_rows_locked_by_another_claimer(store, clock, account):
    first = store.create_task(new_task(account, clock))
    clock.advance(1)
    second = store.create_task(new_task(account, clock))
    locked = threading.Event()
    release = threading.Event()

    def hold_first_row() -> None:
        with store.engine.connect() as conn, conn.begin():
            conn.execute(text("SELECT id FROM tasks WHERE id = :id FOR UPDATE"), {"id": first.id})
            locked.set()
            release.wait(10)

    holder = threading.Thread(target=hold_first_row)
    holder.start()
    try:
        assert locked.wait(10)
        started = time.monotonic()
        claim = store.claim(worker_id="w1", lease_s=30)
        waited = time.monotonic() - started
    finally:
        release.set()
        holder.join()

    assert claim is not None
    assert claim.task.id == second.id
    assert waited < 2
    assert store.claim(worker_id="w2", lease_s=30).task.id == first.id


def test_migrations_on_postgres_match_the_tables(store):
    with store.engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)

    assert diff == []
