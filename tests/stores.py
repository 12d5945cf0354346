"""Shared helpers for store and service tests: a fake clock, stores, sample tasks."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, text

from upres.config import Settings
from upres.db import create_db_engine, migrate
from upres.db.migrate import alembic_config
from upres.db.tables import Base
from upres.db.task_store import SqlTaskStore
from upres.domain.accounts import Account
from upres.domain.records import NewTask
from upres.domain.storage_keys import result_key
from upres.domain.tasks import API_MODEL, Factor, Task, new_task_id

START = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)


class FakeClock:
    """A clock that moves only when told to."""

    def __init__(self, start: datetime = START) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


def sqlite_store(path: Path, clock: FakeClock, *, max_attempts: int = 3) -> SqlTaskStore:
    url = f"sqlite:///{path}"
    migrate(url)
    return SqlTaskStore(url, clock=clock, max_attempts=max_attempts)


def postgres_store(url: str, clock: FakeClock, *, max_attempts: int = 3) -> SqlTaskStore:
    """A store on an emptied PostgreSQL database, migrated from scratch."""
    engine = create_db_engine(url)
    reset_postgres(engine)
    migrate(engine)
    return SqlTaskStore(engine, clock=clock, max_attempts=max_attempts)


def reset_postgres(engine: Engine) -> None:
    Base.metadata.drop_all(engine)
    with engine.begin() as conn:
        conn.execute(text("DROP TABLE IF EXISTS alembic_version"))


def move_schema(
    url: str, revision: str, *, step: Callable[[Config, str], None] = command.upgrade
) -> None:
    """Take the database at ``url`` up (or, with ``command.downgrade``, down) to ``revision``."""
    engine = create_db_engine(url)
    try:
        with engine.begin() as conn:
            config = alembic_config()
            config.attributes["connection"] = conn
            step(config, revision)
    finally:
        engine.dispose()


def render_body(task: Task) -> str:
    """A stand-in for the API's task renderer."""
    return json.dumps({"id": task.id, "status": str(task.status), "progress": task.progress})


def new_task(
    account: Account,
    clock: FakeClock,
    *,
    reserved: float = 32.0,
    callback_url: str | None = "https://hooks.example.com/done",
    factor: Factor = Factor.X2,
) -> NewTask:
    now = clock()
    return NewTask(
        id=new_task_id(int(now.timestamp())),
        account_id=account.id,
        model=API_MODEL,
        factor=factor,
        input_url="https://videos.example.com/in.mp4",
        callback_url=callback_url,
        video_duration_s=2.0,
        credits_reserved=reserved,
        estimated_time_s=60,
        user_group=account.user_group,
        created_at=now,
    )


def ledger_sums(store: SqlTaskStore, account_id: str) -> dict[str, float]:
    sums: dict[str, float] = {"grant": 0.0, "reserve": 0.0, "capture": 0.0, "refund": 0.0}
    for entry in store.ledger(account_id):
        sums[str(entry.kind)] += entry.amount
    return sums


def completed_task(
    store: SqlTaskStore, clock: FakeClock, *, ttl_s: float, key: str | None = None
) -> str:
    """A new account's task, claimed and completed with its result under ``key``
    (by default its first attempt's key), expiring ``ttl_s`` from now; its id."""
    account = store.create_account(user_group="default", credits=1000, webhook_secret="whsec_t")
    task = store.create_task(new_task(account, clock, callback_url=None))
    claim = store.claim(worker_id="w", lease_s=60)
    assert claim is not None
    store.complete(
        claim,
        result_key=key or result_key(task.id, 1),
        result_expires_at=clock() + timedelta(seconds=ttl_s),
        actual_duration_s=2.0,
        credits_charged=32.0,
        callback_body=render_body,
    )
    return task.id


def worker_settings(data_dir: Path, **changes: Any) -> Settings:
    """A worker on the CPU with the fastest network and no temporal stage, beating
    often: what the tests that run real tasks use (``changes`` on top)."""
    return Settings(
        data_dir=data_dir,
        device="cpu",
        model="realesr-animevideov3",
        temporal=False,
        torch_threads=1,
        heartbeat_s=0.2,
        lease_s=30,
        **changes,
    )
