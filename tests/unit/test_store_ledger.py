"""The credit ledger: reservations never overspend, cancels refund, sums stay consistent."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest

from tests.stores import ledger_sums, new_task, render_body
from upres.db.task_store import SqlTaskStore
from upres.domain.tasks import TaskError, TaskStatus
from upres.errors import InsufficientQuota, NotFound, TaskNotCancellable, TaskNotFound


def assert_consistent(store: SqlTaskStore, account_id: str) -> None:
    sums = ledger_sums(store, account_id)
    balance = store.get_account(account_id).balance
    assert balance >= 0
    assert balance == pytest.approx(sums["grant"] - sums["reserve"] + sums["refund"])


def attempt_submissions(store, clock, account, *, count, reserved):
    def submit(_: int) -> bool:
        try:
            store.create_task(new_task(account, clock, reserved=reserved))
        except InsufficientQuota:
            return False
        return True

    with ThreadPoolExecutor(max_workers=count) as pool:
        return list(pool.map(submit, range(count)))


def test_concurrent_submissions_cannot_overspend(store, clock):
    account = store.create_account(user_group="default", credits=160, webhook_secret="whsec_t")

    outcomes = attempt_submissions(store, clock, account, count=50, reserved=16)

    assert outcomes.count(True) == 10
    assert outcomes.count(False) == 40
    assert store.get_account(account.id).balance == 0
    assert store.queue_depth() == 10
    sums = ledger_sums(store, account.id)
    assert (sums["grant"], sums["reserve"], sums["refund"]) == (160, 160, 0)
    assert_consistent(store, account.id)


def test_insufficient_balance_inserts_nothing(store, clock):
    account = store.create_account(user_group="default", credits=10, webhook_secret="whsec_t")

    with pytest.raises(InsufficientQuota):
        store.create_task(new_task(account, clock, reserved=16))

    assert store.queue_depth() == 0
    assert [e.kind for e in store.ledger(account.id)] == ["grant"]


def test_fractional_credits_are_exact(store, clock):
    account = store.create_account(user_group="default", credits=0.3, webhook_secret="whsec_t")
    for _ in range(3):
        store.create_task(new_task(account, clock, reserved=0.1))

    assert store.get_account(account.id).balance == 0
    with pytest.raises(InsufficientQuota):
        store.create_task(new_task(account, clock, reserved=0.1))


def test_cancel_pending_refunds_and_queues_callback(store, clock, account):
    task = store.create_task(new_task(account, clock, reserved=32))
    clock.advance(5)

    cancelled = store.cancel_task(task.id, account_id=account.id, callback_body=render_body)

    assert cancelled.status is TaskStatus.CANCELLED
    assert cancelled.cancel_requested is True
    assert cancelled.finished_at == clock.now
    assert cancelled.error is not None
    assert cancelled.error.code == "request_cancelled"
    assert store.get_account(account.id).balance == 1000
    assert store.outbox_for_task(task.id)[0].body == render_body(cancelled)
    assert store.claim(worker_id="w1", lease_s=30) is None
    assert_consistent(store, account.id)


def test_cancel_processing_refunds_and_signals_the_worker(store, clock, account):
    task = store.create_task(new_task(account, clock, reserved=32))
    claim = store.claim(worker_id="w1", lease_s=30)

    store.cancel_task(task.id, account_id=account.id, callback_body=render_body)

    assert store.heartbeat(claim, progress=60, estimated_time_s=3).cancelled is True
    assert store.get_account(account.id).balance == 1000
    clock.advance(60)
    assert store.reap(callback_body=render_body) == []


@pytest.mark.parametrize("end", ["complete", "fail", "cancel"])
def test_cancel_of_an_ended_task_is_refused(store, clock, account, end):
    task = store.create_task(new_task(account, clock, reserved=32))
    if end == "cancel":
        store.cancel_task(task.id, account_id=account.id, callback_body=render_body)
    else:
        claim = store.claim(worker_id="w1", lease_s=30)
        if end == "complete":
            store.complete(
                claim,
                result_key="r.mp4",
                result_expires_at=clock.now,
                actual_duration_s=2,
                credits_charged=32,
                callback_body=render_body,
            )
        else:
            store.fail(
                claim,
                error=TaskError(code="service_error", message="x"),
                retry=False,
                callback_body=render_body,
            )
    balance = store.get_account(account.id).balance

    with pytest.raises(TaskNotCancellable):
        store.cancel_task(task.id, account_id=account.id, callback_body=render_body)

    assert store.get_account(account.id).balance == balance
    assert len(store.outbox_for_task(task.id)) == 1
    assert_consistent(store, account.id)


def test_other_accounts_tasks_are_invisible(store, clock, account):
    other = store.create_account(user_group="default", credits=0, webhook_secret="whsec_o")
    task = store.create_task(new_task(account, clock))

    with pytest.raises(TaskNotFound):
        store.get_task(task.id, account_id=other.id)
    with pytest.raises(TaskNotFound):
        store.cancel_task(task.id, account_id=other.id, callback_body=render_body)
    assert store.get_task(task.id, account_id=account.id).id == task.id


def test_grant_adds_credits_and_records_them(store, account):
    assert store.grant_credits(account_id=account.id, amount=24.5).balance == 1024.5
    assert [(e.kind, e.amount) for e in store.ledger(account.id)] == [
        ("grant", 1000),
        ("grant", 24.5),
    ]
    with pytest.raises(NotFound):
        store.grant_credits(account_id="acct_missing", amount=1)


def test_credits_captured_total_sums_captures(store, clock, account):
    for charged in (10, 20):
        store.create_task(new_task(account, clock, reserved=32))
        claim = store.claim(worker_id="w", lease_s=30)
        store.complete(
            claim,
            result_key="r",
            result_expires_at=clock.now,
            actual_duration_s=1,
            credits_charged=charged,
            callback_body=render_body,
        )

    assert store.credits_captured_total() == 30
    assert_consistent(store, account.id)
