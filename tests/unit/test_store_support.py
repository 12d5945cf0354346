"""Store support for the other parts: result expiry, metrics, idempotency,
migrations and SQLite connection settings (callbacks: test_store_callbacks;
throughput: test_store_throughput)."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from datetime import timedelta

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import bindparam, inspect, text

from tests.stores import move_schema, new_task, render_body, sqlite_store
from tests.unit import test_store_chunks
from upres.db import create_db_engine, migrate
from upres.db.migrate import alembic_config
from upres.db.tables import Base, UtcDateTime
from upres.db.task_store import SqlTaskStore
from upres.domain.records import IdempotencyRecord
from upres.domain.tasks import TaskError, TaskStatus
from upres.errors import IdempotencyConflict, NotFound, ServiceUnavailable, TaskNotFound


def _finish(store, clock, account, *, ttl_s=3600):
    store.create_task(new_task(account, clock))
    claim = store.claim(worker_id="w", lease_s=30)
    return store.complete(
        claim,
        result_key=f"{claim.task.id}.mp4",
        result_expires_at=clock.now + timedelta(seconds=ttl_s),
        actual_duration_s=2,
        credits_charged=32,
        callback_body=render_body,
    )


def test_results_expire_and_are_forgotten(store, clock, account):
    task = _finish(store, clock, account, ttl_s=24 * 3600)
    assert store.expired_results(now=clock.now) == []

    clock.advance(24 * 3600)
    assert [t.id for t in store.expired_results(now=clock.now)] == [task.id]
    store.forget_result(task.id)

    assert store.expired_results(now=clock.now) == []
    forgotten = store.get_task(task.id)
    assert forgotten.result_key is None
    assert forgotten.result_expires_at == task.result_expires_at


def test_counts_and_queue_depth(store, clock, account):
    _finish(store, clock, account)
    store.create_task(new_task(account, clock))
    store.create_task(new_task(account, clock))
    store.claim(worker_id="w", lease_s=30)

    counts = store.count_by_status()
    assert counts[TaskStatus.COMPLETED] == 1
    assert counts[TaskStatus.PROCESSING] == 1
    assert counts[TaskStatus.PENDING] == 1
    assert counts[TaskStatus.FAILED] == 0
    assert store.queue_depth() == 1


def test_idempotency_record_is_found_and_expires(store, clock, account):
    record = IdempotencyRecord(key="abc", request_hash="h1")
    task = store.create_task(new_task(account, clock), idempotency=record)

    hit = store.find_idempotent(account_id=account.id, key="abc", since=clock.now)
    assert hit is not None
    assert (hit.task.id, hit.request_hash) == (task.id, "h1")
    with pytest.raises(IdempotencyConflict):
        store.create_task(new_task(account, clock), idempotency=record)
    assert store.get_account(account.id).balance == 1000 - 32

    clock.advance(25 * 3600)
    window = clock.now - timedelta(hours=24)
    assert store.find_idempotent(account_id=account.id, key="abc", since=window) is None
    store.create_task(new_task(account, clock), idempotency=record)


def test_concurrent_claimers_never_share_a_task(store, clock, account):
    for _ in range(12):
        store.create_task(new_task(account, clock, reserved=1))

    def drain(worker: int) -> list[str]:
        got = []
        while (claim := store.claim(worker_id=f"w{worker}", lease_s=30)) is not None:
            got.append(claim.task.id)
        return got

    with ThreadPoolExecutor(max_workers=4) as pool:
        claimed = [task_id for ids in pool.map(drain, range(4)) for task_id in ids]

    assert len(claimed) == 12 == len(set(claimed))


def test_migrations_apply_from_empty_and_match_the_tables(tmp_path):
    url = f"sqlite:///{tmp_path / 'fresh.db'}"
    migrate(url)
    migrate(url)  # idempotent at head
    engine = create_db_engine(url)
    try:
        with engine.connect() as conn:
            diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
            names = set(inspect(conn).get_table_names())
    finally:
        engine.dispose()

    assert diff == []
    assert names >= {
        "accounts",
        "api_keys",
        "tasks",
        "ledger",
        "callback_outbox",
        "uploads",
        "chunks",
        "alembic_version",
    }


def test_concurrent_start_ups_migrate_once(tmp_path):
    url = f"sqlite:///{tmp_path / 'racing.db'}"

    with ThreadPoolExecutor(max_workers=3) as pool:
        list(pool.map(lambda _: migrate(url), range(3)))

    engine = create_db_engine(url)
    try:
        with engine.connect() as conn:
            head = ScriptDirectory.from_config(alembic_config()).get_current_head()
            assert conn.exec_driver_sql("SELECT version_num FROM alembic_version").all() == [
                (head,)
            ]
    finally:
        engine.dispose()


# An outbox row as revision 0001 wrote it: no lease columns yet.
_OUTBOX_AT_0001 = text(
    "INSERT INTO callback_outbox (task_id, account_id, url, body, attempts,"
    " next_attempt_at, delivered, done_at, created_at)"
    " VALUES (:task_id, :account_id, :url, '{}', 0, :at, :delivered, NULL, :at)"
).bindparams(bindparam("at", type_=UtcDateTime()))


def test_an_outbox_row_written_at_0001_is_still_due_after_upgrading(tmp_path, clock):
    url = f"sqlite:///{tmp_path / 'old.db'}"
    # Rows the store writes today, then the schema taken back to 0001 under them.
    store = sqlite_store(tmp_path / "old.db", clock)
    account = store.create_account(user_group="default", credits=1000, webhook_secret="whsec_x")
    task = store.create_task(new_task(account, clock))
    store.close()
    move_schema(url, "0001", step=command.downgrade)
    old = SqlTaskStore(url, clock=clock)
    with old.engine.begin() as conn:
        conn.execute(
            _OUTBOX_AT_0001,
            {
                "task_id": task.id,
                "account_id": account.id,
                "url": task.callback_url,
                "at": clock.now,
                "delivered": False,
            },
        )
    old.close()

    migrate(url)
    store = SqlTaskStore(url, clock=clock)
    try:
        (item,) = store.claim_callbacks(dispatcher_id="d1", limit=10, lease_s=60)
    finally:
        store.close()

    assert (item.task_id, item.attempts, item.next_attempt_at) == (task.id, 0, clock.now)
    assert item.message_id == f"msg_{item.id}"  # the webhook-id it may have been sent with


def test_webhook_ids_differ_across_databases(tmp_path, clock):
    """Two deployments (or one after a reset) must not reuse a receiver's dedupe key."""
    ids = []
    for name in ("a.db", "b.db"):
        store = sqlite_store(tmp_path / name, clock)
        account = store.create_account(user_group="g", credits=1000, webhook_secret="whsec_x")
        for _ in range(2):
            task = store.create_task(new_task(account, clock, callback_url="https://h.example/"))
            store.cancel_task(task.id, account_id=account.id, callback_body=render_body)
            ids += [item.message_id for item in store.outbox_for_task(task.id)]
        store.close()
    assert len(ids) == len(set(ids)) == 4
    assert all(i.startswith("msg_") and len(i) == 36 for i in ids)


def test_sqlite_connections_use_wal_and_foreign_keys(store):
    with store.engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
        assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() > 0


def test_ping_raises_service_unavailable_when_the_database_is_gone(tmp_path, clock):
    store = sqlite_store(tmp_path / "upres.db", clock)
    store.ping()
    with store.engine.begin() as conn:
        conn.execute(text("DROP TABLE callback_attempts"))
    store.close()
    broken = SqlTaskStore(f"sqlite:///{tmp_path / 'missing' / 'x.db'}", clock=clock)

    with pytest.raises(ServiceUnavailable):
        broken.ping()


def test_a_polls_read_returns_what_an_orm_load_returns(store, clock, account):
    # get_task and get_account read through RowRead, list_tasks and the write paths
    # through the ORM: every column must come back the same either way.
    assert store.get_account(account.id) == account
    store.create_task(new_task(account, clock))
    claim = store.claim(worker_id="w1", lease_s=30)
    store.heartbeat(claim, progress=40, estimated_time_s=12, fps=7.5)
    done = store.complete(
        claim,
        result_key="k.mp4",
        result_expires_at=clock.now + timedelta(hours=24, microseconds=7),
        actual_duration_s=1.2,
        credits_charged=20.000001,
        callback_body=render_body,
        notes=("a note", "another"),
    )
    failed = store.create_task(new_task(account, clock, callback_url=None))
    store.fail(
        store.claim(worker_id="w2", lease_s=30),
        error=TaskError(code="x", message="é"),
        retry=False,
        callback_body=render_body,
    )

    listed = {task.id: task for task in store.list_tasks(account_id=account.id, limit=10)}
    assert store.get_task(done.id) == listed[done.id] == done
    assert store.get_task(failed.id, account_id=account.id) == listed[failed.id]


def test_a_polls_read_refuses_what_is_not_there(store, clock, account):
    with pytest.raises(TaskNotFound):
        store.get_task("task-unified-1-aaaaaaaa")
    created = store.create_task(new_task(account, clock))
    with pytest.raises(TaskNotFound):
        store.get_task(created.id, account_id="acct_someone_else")
    with pytest.raises(NotFound):
        store.get_account("acct_nobody")


def test_a_polls_read_of_a_broken_database_is_service_unavailable(store, clock, account):
    created = store.create_task(new_task(account, clock))
    with store.engine.begin() as conn:
        conn.execute(text("ALTER TABLE tasks RENAME TO tasks_away"))
    try:
        with pytest.raises(ServiceUnavailable):
            store.get_task(created.id)
    finally:
        with store.engine.begin() as conn:
            conn.execute(text("ALTER TABLE tasks_away RENAME TO tasks"))
    assert store.get_task(created.id) == created


def test_a_task_keeps_its_look_through_every_read(store, clock, account):
    chosen = replace(new_task(account, clock), network="realesr-animevideov3", denoise=2)
    created = store.create_task(chosen)
    clock.advance(1)
    plain = store.create_task(new_task(account, clock))

    assert (created.network, created.denoise) == ("realesr-animevideov3", 2)
    assert (plain.network, plain.denoise) == (None, None)
    listed = {task.id: task for task in store.list_tasks(account_id=account.id, limit=10)}
    assert store.get_task(created.id) == listed[created.id] == created
    claim = store.claim(worker_id="w1", lease_s=30)
    assert (claim.task.id, claim.task.network, claim.task.denoise) == (
        created.id,
        "realesr-animevideov3",
        2,
    )
    # Its chunks, claimed with their task's row, run the same network.
    store.insert_chunks(claim, test_store_chunks.spans(6, 6))
    chunk_claims = [store.claim_chunk(worker_id=w, lease_s=30) for w in ("a", "b")]
    assert [(c.task.network, c.task.denoise) for c in chunk_claims] == [
        ("realesr-animevideov3", 2)
    ] * 2


def test_a_task_stored_before_looks_were_chosen_reads_as_none(store, clock, account):
    url = store.engine.url.render_as_string(hide_password=False)
    created = store.create_task(replace(new_task(account, clock), network="realsr-df2k-x4"))
    move_schema(url, "0007", step=command.downgrade)  # the look's columns go
    move_schema(url, "head")

    read = store.get_task(created.id)
    assert (read.network, read.denoise) == (None, None)
    assert replace(read, network=created.network) == created


def test_a_task_keeps_its_frame_rate_through_every_read(store, clock, account):
    chosen = replace(new_task(account, clock), frame_rate=59.94, slowmo=2)
    created = store.create_task(chosen)
    clock.advance(1)
    plain = store.create_task(new_task(account, clock))

    assert (created.frame_rate, created.slowmo) == (59.94, 2)
    assert (plain.frame_rate, plain.slowmo) == (None, None)
    listed = {task.id: task for task in store.list_tasks(account_id=account.id, limit=10)}
    assert store.get_task(created.id) == listed[created.id] == created
    claim = store.claim(worker_id="w1", lease_s=30)
    assert (claim.task.id, claim.task.frame_rate, claim.task.slowmo) == (created.id, 59.94, 2)
    # Its chunks, claimed with their task's row, run the same rate.
    store.insert_chunks(claim, test_store_chunks.spans(6, 6))
    chunk_claims = [store.claim_chunk(worker_id=w, lease_s=30) for w in ("a", "b")]
    assert [c.task.frame_rate_request for c in chunk_claims] == [created.frame_rate_request] * 2


def test_a_task_stored_before_frame_rates_reads_as_unchanged(store, clock, account):
    url = store.engine.url.render_as_string(hide_password=False)
    created = store.create_task(replace(new_task(account, clock), frame_rate=48.0, slowmo=4))
    move_schema(url, "0008", step=command.downgrade)  # the frame rate's columns go (and 0010's)
    move_schema(url, "head")

    read = store.get_task(created.id)
    assert (read.frame_rate, read.slowmo) == (None, None)
    assert replace(read, frame_rate=48.0, slowmo=4) == created
