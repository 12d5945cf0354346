"""Callback signing and the delivery schedule, on the real SQLite store and a real receiver."""

from __future__ import annotations

import base64
import hashlib
import hmac
import itertools
import json
import ssl
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from tests.servers import WebhookReceiver
from tests.stores import FakeClock, new_task, render_body, sqlite_store
from upres.callbacks import CallbackSender, sign, verify_signature
from upres.callbacks.webhooks import signing_key
from upres.db.task_store import SqlTaskStore
from upres.domain.records import OutboxItem
from upres.inputs.netpolicy import AddressPolicy
from upres.services.keys import new_webhook_secret

SECRET = "whsec_" + base64.b64encode(b"k" * 32).decode()


class TestSignatures:
    def test_matches_the_standard_webhooks_construction(self) -> None:
        body = '{"id":"task-unified-1-abcdefgh"}'
        expected = base64.b64encode(
            hmac.new(b"k" * 32, f"msg_1.1700000000.{body}".encode(), hashlib.sha256).digest()
        ).decode()
        assert sign(SECRET, msg_id="msg_1", timestamp=1700000000, body=body) == "v1," + expected

    def test_signing_key_decodes_the_whsec_part(self) -> None:
        assert signing_key(SECRET) == b"k" * 32
        assert signing_key("not base64 !") == b"not base64 !"

    def test_verify_accepts_its_own_signature_and_rejects_tampering(self) -> None:
        body = '{"status":"completed"}'
        headers = {
            "Webhook-Id": "msg_9",
            "Webhook-Timestamp": "1700000000",
            "Webhook-Signature": "v1,bogus "
            + sign(SECRET, msg_id="msg_9", timestamp=1700000000, body=body),
        }
        assert verify_signature(SECRET, headers, body, now=1700000010)
        assert verify_signature(SECRET, headers, body.encode(), now=1700000010)
        assert not verify_signature(SECRET, headers, body + " ", now=1700000010)
        assert not verify_signature(new_webhook_secret(), headers, body, now=1700000010)
        assert not verify_signature(SECRET, headers, body, now=1700000000 + 301)
        assert verify_signature(SECRET, headers, body, tolerance_s=None, now=0)
        assert not verify_signature(
            SECRET, {**headers, "webhook-id": "msg_8"}, body, now=1700000010
        )
        assert not verify_signature(SECRET, {"webhook-id": "msg_9"}, body)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def store(tmp_path: Path, clock: FakeClock) -> Iterator[SqlTaskStore]:
    db = sqlite_store(tmp_path / "db.sqlite", clock)
    yield db
    db.close()


def _queue_callback(store: SqlTaskStore, clock: FakeClock, url: str) -> tuple[OutboxItem, str]:
    """A cancelled task with ``url`` as its callback; returns its outbox item and secret."""
    secret = new_webhook_secret()
    account = store.create_account(user_group="default", credits=1000, webhook_secret=secret)
    task = store.create_task(new_task(account, clock, callback_url=url))
    store.cancel_task(task.id, account_id=account.id, callback_body=render_body)
    (item,) = store.outbox_for_task(task.id)
    return item, secret


@dataclass(frozen=True)
class Tls:
    """HTTPS receivers with certificates of the test CA, and senders that trust it."""

    ca_file: Path
    server: ssl.SSLContext

    def receiver(self, **options: Any) -> WebhookReceiver:
        return WebhookReceiver(tls=self.server, **options)

    def sender(
        self, store: SqlTaskStore, clock: FakeClock, *, allow_private: bool = True
    ) -> CallbackSender:
        policy = AddressPolicy(allow_private)
        return CallbackSender(store, policy, ca_file=self.ca_file, timeout_s=5, clock=clock)


@pytest.fixture
def tls(ca_file: Path, server_tls: ssl.SSLContext) -> Tls:
    return Tls(ca_file, server_tls)


def test_delivers_signed_body(store: SqlTaskStore, clock: FakeClock, tls: Tls) -> None:
    with tls.receiver() as receiver:
        item, secret = _queue_callback(store, clock, receiver.url())
        sender = tls.sender(store, clock)
        assert sender.deliver_due() == 1
        sender.close()
    (got,) = receiver.received
    assert got.headers["content-type"] == "application/json"
    assert got.headers["webhook-id"] == item.message_id
    assert int(got.headers["webhook-timestamp"]) == int(clock().timestamp())
    assert verify_signature(secret, got.headers, got.body, tolerance_s=None)
    assert json.loads(got.body)["status"] == "cancelled"
    (attempt,) = store.callback_attempts(item.id)
    assert (attempt.delivered, attempt.status_code, attempt.error) == (True, 200, None)
    assert sender.claim(limit=10) == []


def test_retries_at_1_2_4_seconds_then_gives_up(
    store: SqlTaskStore, clock: FakeClock, tls: Tls
) -> None:
    with tls.receiver(statuses=(503,)) as receiver:
        item, _ = _queue_callback(store, clock, receiver.url())
        sender = tls.sender(store, clock)
        assert sender.deliver_due() == 0
        for delay in (1, 2, 4):
            clock.advance(delay - 0.5)
            assert sender.claim(limit=10) == []
            clock.advance(0.5)
            assert sender.deliver_due() == 0
        clock.advance(3600)
        assert sender.claim(limit=10) == []
        sender.close()
    attempts = store.callback_attempts(item.id)
    assert [a.attempt for a in attempts] == [1, 2, 3, 4]
    assert [a.status_code for a in attempts] == [503] * 4
    assert all(not a.delivered and a.error == "HTTP 503" for a in attempts)
    gaps = [(b.at - a.at) for a, b in itertools.pairwise(attempts)]
    assert gaps == [timedelta(seconds=s) for s in (1, 2, 4)]
    assert len(receiver.received) == 4
    assert len({r.headers["webhook-id"] for r in receiver.received}) == 1


def test_success_on_a_retry_stops_retrying(store: SqlTaskStore, clock: FakeClock, tls: Tls) -> None:
    with tls.receiver(statuses=(500, 204)) as receiver:
        item, _ = _queue_callback(store, clock, receiver.url())
        sender = tls.sender(store, clock)
        sender.deliver_due()
        clock.advance(1)
        assert sender.deliver_due() == 1
        clock.advance(10)
        assert sender.claim(limit=10) == []
        sender.close()
    assert [a.status_code for a in store.callback_attempts(item.id)] == [500, 204]


def test_redirect_is_not_followed(store: SqlTaskStore, clock: FakeClock, tls: Tls) -> None:
    with tls.receiver(statuses=(302,), headers=(("Location", "/elsewhere"),)) as receiver:
        item, _ = _queue_callback(store, clock, receiver.url())
        sender = tls.sender(store, clock)
        sender.deliver_due()
        sender.close()
    assert [r.path for r in receiver.received] == ["/hook"]
    (attempt,) = store.callback_attempts(item.id)
    assert not attempt.delivered
    assert attempt.error == "HTTP 302 (redirects are not followed)"


def test_private_receiver_refused_without_allow_private(
    store: SqlTaskStore, clock: FakeClock, tls: Tls
) -> None:
    with tls.receiver() as receiver:
        item, _ = _queue_callback(store, clock, receiver.url(host="localhost"))
        sender = tls.sender(store, clock, allow_private=False)
        sender.deliver_due()
        sender.close()
    assert receiver.received == []
    (attempt,) = store.callback_attempts(item.id)
    assert attempt.status_code is None
    assert attempt.error is not None
    assert "not allowed" in attempt.error


def test_unreachable_receiver_is_a_recorded_failure(
    store: SqlTaskStore, clock: FakeClock, tls: Tls
) -> None:
    item, _ = _queue_callback(store, clock, "https://127.0.0.1:1/hook")
    sender = tls.sender(store, clock)
    sender.deliver_due()
    sender.close()
    (attempt,) = store.callback_attempts(item.id)
    assert attempt.status_code is None
    assert attempt.error is not None
    assert attempt.error.startswith("request failed")


def test_a_sender_whose_lease_was_taken_over_leaves_the_attempt_to_the_new_holder(
    store: SqlTaskStore, clock: FakeClock, tls: Tls
) -> None:
    with tls.receiver() as receiver:
        item, _ = _queue_callback(store, clock, receiver.url())
        stalled, other = tls.sender(store, clock), tls.sender(store, clock)
        (held,) = stalled.claim(limit=10)
        clock.advance(stalled.lease_s)
        (taken,) = other.claim(limit=10)

        assert stalled.deliver(held).delivered  # sent, but not recorded: no exception
        assert store.callback_attempts(item.id) == []
        assert other.deliver(taken).delivered
        stalled.close()
        other.close()
    assert [a.attempt for a in store.callback_attempts(item.id)] == [1]
    # At least once: both POSTs went out, with one webhook-id for the receiver to dedupe on.
    assert [r.headers["webhook-id"] for r in receiver.received] == [item.message_id] * 2
    assert other.claim(limit=10) == []


@pytest.mark.parametrize(
    "url", ["https://010.010.010.010/cb", "https://a..b/cb", "http://hooks.example.com/cb"]
)
def test_a_callback_that_can_never_be_sent_is_recorded_and_given_up(
    store: SqlTaskStore, clock: FakeClock, tls: Tls, url: str
) -> None:
    """Stored before the URL policy refused it: one recorded attempt, then done."""
    item, _ = _queue_callback(store, clock, url)
    sender = tls.sender(store, clock)
    assert sender.deliver_due() == 0
    clock.advance(3600)
    assert sender.claim(limit=10) == []
    sender.close()
    (attempt,) = store.callback_attempts(item.id)
    assert (attempt.delivered, attempt.status_code) == (False, None)
    assert attempt.error is not None
    assert "callback_url" in attempt.error


def test_any_exception_in_a_delivery_is_a_recorded_failed_attempt(
    store: SqlTaskStore, clock: FakeClock, tls: Tls, monkeypatch: pytest.MonkeyPatch
) -> None:
    item, _ = _queue_callback(store, clock, "https://127.0.0.1:1/hook")
    sender = tls.sender(store, clock)

    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("a library surprise")

    monkeypatch.setattr(sender._client, "stream", broken)
    assert sender.deliver_due() == 0
    for delay in (1, 2, 4, 3600):
        clock.advance(delay)
        sender.deliver_due()
    sender.close()
    attempts = store.callback_attempts(item.id)
    assert [a.attempt for a in attempts] == [1, 2, 3, 4]
    assert all(a.error == "request failed: RuntimeError: a library surprise" for a in attempts)
    assert sender.claim(limit=10) == []
