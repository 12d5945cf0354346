"""Callbacks end to end: a real HTTPS receiver with its own CA, the real store, real time,
and several dispatchers sharing one database."""

from __future__ import annotations

import json
import os
import ssl
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.servers import WebhookReceiver
from tests.stores import FakeClock, new_task, render_body, reset_postgres
from upres.callbacks import CallbackDispatcher, CallbackSender, verify_signature
from upres.clock import utc_now
from upres.config import Settings
from upres.db import create_db_engine, migrate
from upres.db.task_store import SqlTaskStore
from upres.domain.records import CallbackAttempt, OutboxItem
from upres.inputs.netpolicy import AddressPolicy
from upres.services.keys import new_webhook_secret
from upres.wiring import Housekeeping, open_store

LAN = AddressPolicy(True)
POSTGRES_URL = os.environ.get("UPRES_TEST_POSTGRES_URL")


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SqlTaskStore]:
    url = f"sqlite:///{tmp_path / 'db.sqlite'}"
    migrate(url)
    db = SqlTaskStore(url)
    yield db
    db.close()


@pytest.fixture(params=["sqlite", "postgresql"])
def shared_database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A database for several processes' stores: a SQLite file, or the emptied
    PostgreSQL at ``UPRES_TEST_POSTGRES_URL`` (skipped when unset)."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'shared.db'}"
    if not POSTGRES_URL:
        pytest.skip("UPRES_TEST_POSTGRES_URL is not set")
    engine = create_db_engine(POSTGRES_URL)
    reset_postgres(engine)
    engine.dispose()
    return POSTGRES_URL


def _queue(store: SqlTaskStore, url: str) -> tuple[OutboxItem, str]:
    secret = new_webhook_secret()
    account = store.create_account(user_group="default", credits=1000, webhook_secret=secret)
    task = store.create_task(new_task(account, FakeClock(utc_now()), callback_url=url))
    store.cancel_task(task.id, account_id=account.id, callback_body=render_body)
    (item,) = store.outbox_for_task(task.id)
    return item, secret


def _wait(condition: Callable[[], bool], timeout_s: float) -> None:
    end = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < end, "timed out waiting"
        time.sleep(0.05)


def _sender(store: SqlTaskStore, ca_file: Path | None, timeout_s: float = 10) -> CallbackSender:
    return CallbackSender(store, LAN, ca_file=ca_file, timeout_s=timeout_s)


def test_delivery_over_https_with_verifiable_signature(
    store: SqlTaskStore, server_tls: ssl.SSLContext, ca_file: Path
) -> None:
    with WebhookReceiver(tls=server_tls) as receiver:
        item, secret = _queue(store, receiver.url())
        sender = _sender(store, ca_file)
        assert sender.deliver_due() == 1
        sender.close()
    (got,) = receiver.received
    assert verify_signature(secret, got.headers, got.body)
    assert json.loads(got.body) == json.loads(item.body)
    assert store.callback_attempts(item.id)[0].delivered


def test_untrusted_certificate_fails_without_the_ca_file(
    store: SqlTaskStore, server_tls: ssl.SSLContext
) -> None:
    with WebhookReceiver(tls=server_tls) as receiver:
        item, _ = _queue(store, receiver.url())
        sender = _sender(store, None)
        assert sender.deliver_due() == 0
        sender.close()
    (attempt,) = store.callback_attempts(item.id)
    assert attempt.error is not None
    assert "CERTIFICATE_VERIFY_FAILED" in attempt.error


@pytest.mark.slow
def test_dispatcher_retries_after_1_then_2_seconds(
    store: SqlTaskStore, server_tls: ssl.SSLContext, ca_file: Path
) -> None:
    with WebhookReceiver(tls=server_tls, statuses=(500, 500, 200)) as receiver:
        item, secret = _queue(store, receiver.url(host="localhost"))
        sender = _sender(store, ca_file)
        with CallbackDispatcher(sender, interval_s=0.05):
            _wait(lambda: len(store.callback_attempts(item.id)) == 3, timeout_s=10)
            time.sleep(0.3)  # a fourth attempt would be a bug
        sender.close()
    attempts: list[CallbackAttempt] = store.callback_attempts(item.id)
    assert [(a.attempt, a.status_code, a.delivered) for a in attempts] == [
        (1, 500, False),
        (2, 500, False),
        (3, 200, True),
    ]
    times = [r.at for r in receiver.received]
    assert len(times) == 3
    assert times[1] - times[0] == pytest.approx(1.0, abs=0.35)
    assert times[2] - times[1] == pytest.approx(2.0, abs=0.35)
    assert all(verify_signature(secret, r.headers, r.body) for r in receiver.received)
    assert sender.claim(limit=10) == []


def test_redirect_counts_as_failure(
    store: SqlTaskStore, server_tls: ssl.SSLContext, ca_file: Path
) -> None:
    location = (("Location", "https://127.0.0.1:1/other"),)
    with WebhookReceiver(tls=server_tls, statuses=(302,), headers=location) as receiver:
        item, _ = _queue(store, receiver.url())
        sender = _sender(store, ca_file)
        assert sender.deliver_due() == 0
        sender.close()
    assert len(receiver.received) == 1
    (attempt,) = store.callback_attempts(item.id)
    assert (attempt.status_code, attempt.delivered) == (302, False)
    assert store.outbox_for_task(item.task_id)[0].next_attempt_at > attempt.at


def test_receiver_too_slow_times_out(
    store: SqlTaskStore, server_tls: ssl.SSLContext, ca_file: Path
) -> None:
    with WebhookReceiver(tls=server_tls, delay_s=1.5) as receiver:
        item, _ = _queue(store, receiver.url())
        sender = _sender(store, ca_file, timeout_s=0.4)
        started = time.monotonic()
        assert sender.deliver_due() == 0
        elapsed = time.monotonic() - started
        sender.close()
    assert elapsed < 1.2
    (attempt,) = store.callback_attempts(item.id)
    assert (attempt.status_code, attempt.error) == (None, "timed out")


@pytest.mark.slow
def test_two_housekeepings_on_one_database_deliver_each_callback_once(
    tmp_path: Path, shared_database_url: str, server_tls: ssl.SSLContext, ca_file: Path
) -> None:
    settings = Settings(
        data_dir=tmp_path,
        database_url=shared_database_url,
        allow_private_networks=True,
        callback_ca_file=ca_file,
    )
    stores = [open_store(settings), open_store(settings)]
    chores = [Housekeeping(settings=settings, store=store) for store in stores]
    # A slow receiver keeps both dispatchers' workers busy at once.
    with WebhookReceiver(tls=server_tls, delay_s=0.05) as receiver:
        items = [_queue(stores[0], receiver.url())[0] for _ in range(24)]
        for chore in chores:
            chore.start()
        try:
            _wait(lambda: all(stores[1].callback_attempts(item.id) for item in items), 30)
            time.sleep(0.5)  # a second delivery of any of them would be a bug
        finally:
            for chore in chores:
                chore.stop()
            for store in stores:
                store.close()
    received = sorted(r.headers["webhook-id"] for r in receiver.received)
    assert received == sorted(item.message_id for item in items)
