"""The store tests again, on PostgreSQL, plus what only PostgreSQL can show (SKIP LOCKED).

Runs against the database at ``UPRES_TEST_POSTGRES_URL`` (emptied first!) and
skips when it is unset, e.g.
``UPRES_TEST_POSTGRES_URL=postgresql://postgres@127.0.0.1:5432/upres_test``.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import text

from tests.stores import FakeClock, new_task, postgres_store, render_body
from tests.unit import (
    test_store_callbacks,
    test_store_chunks,
    test_store_ledger,
    test_store_queue,
    test_store_support,
    test_store_throughput,
)
from upres.db.tables import Base
from upres.db.task_store import SqlTaskStore
from upres.domain.accounts import Account

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
for _module in (
    test_store_queue,
    test_store_ledger,
    test_store_support,
    test_store_throughput,
    test_store_callbacks,
    test_store_chunks,
):
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


@contextmanager
def row_locked(store: SqlTaskStore, table: str, row_id: object) -> Iterator[None]:
    """Hold ``FOR UPDATE`` on one row of ``table`` from another connection, as a
    concurrent claimer mid-transaction would, for the block."""
    locked = threading.Event()
    release = threading.Event()

    def hold() -> None:
        with store.engine.connect() as conn, conn.begin():
            conn.execute(text(f"SELECT id FROM {table} WHERE id = :id FOR UPDATE"), {"id": row_id})
            locked.set()
            release.wait(10)

    holder = threading.Thread(target=hold)
    holder.start()
    try:
        assert locked.wait(10)
        yield
    finally:
        release.set()
        holder.join()


def test_claim_skips_rows_locked_by_another_claimer(store, clock, account):
    first = store.create_task(new_task(account, clock))
    clock.advance(1)
    second = store.create_task(new_task(account, clock))

    with row_locked(store, "tasks", first.id):
        started = time.monotonic()
        claim = store.claim(worker_id="w1", lease_s=30)
        waited = time.monotonic() - started

    assert claim is not None
    assert claim.task.id == second.id
    assert waited < 2
    assert store.claim(worker_id="w2", lease_s=30).task.id == first.id


def test_callback_claim_skips_rows_locked_by_another_claimer(store, clock, account):
    first, second = (store.create_task(new_task(account, clock, reserved=1)) for _ in range(2))
    for task in (first, second):
        store.cancel_task(task.id, account_id=account.id, callback_body=render_body)
        clock.advance(1)
    (locked_item,) = store.outbox_for_task(first.id)

    with row_locked(store, "callback_outbox", locked_item.id):
        started = time.monotonic()
        claimed = store.claim_callbacks(dispatcher_id="d1", limit=10, lease_s=60)
        waited = time.monotonic() - started

    assert [item.task_id for item in claimed] == [second.id]
    assert waited < 2
    (unlocked,) = store.claim_callbacks(dispatcher_id="d2", limit=10, lease_s=60)
    assert unlocked.id == locked_item.id


def test_migrations_on_postgres_match_the_tables(store):
    with store.engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)

    assert diff == []


def test_chunk_claim_skips_chunks_locked_by_another_claimer(store, clock, account):
    task = test_store_chunks.planned(store, clock, account, 30, 10)
    locked = threading.Event()
    release = threading.Event()

    def hold() -> None:
        with store.engine.connect() as conn, conn.begin():
            conn.execute(
                text("SELECT 1 FROM chunks WHERE task_id = :id AND chunk_index = 0 FOR UPDATE"),
                {"id": task.id},
            )
            locked.set()
            release.wait(10)

    holder = threading.Thread(target=hold)
    holder.start()
    try:
        assert locked.wait(10)
        started = time.monotonic()
        claim = store.claim_chunk(worker_id="w1", lease_s=30)
        waited = time.monotonic() - started
    finally:
        release.set()
        holder.join()

    assert claim is not None
    assert claim.chunk.index == 1
    assert waited < 2
