"""The task table as a queue: claim, lease, heartbeat, fencing, reap, complete, fail."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import pytest

from tests.stores import ledger_sums, new_task, render_body
from upres.db.lease import RETRY_DELAYS_S
from upres.domain.tasks import TaskError, TaskStatus
from upres.errors import LeaseLost
from upres.jobs.reaper import Reaper

BOOM = TaskError(code="service_error", message="boom")


def _broken_body(task):
    raise RuntimeError("the renderer is down")


def _complete(store, claim, clock, charged=20.0):
    return store.complete(
        claim,
        result_key=f"{claim.task.id}/{claim.attempt}.mp4",
        result_expires_at=clock.now + timedelta(hours=24),
        actual_duration_s=1.2,
        credits_charged=charged,
        callback_body=render_body,
    )


def test_claim_takes_oldest_pending_with_a_lease(store, clock, account):
    first = store.create_task(new_task(account, clock))
    clock.advance(1)
    second = store.create_task(new_task(account, clock))

    claim = store.claim(worker_id="w1", lease_s=30)

    assert claim is not None
    assert claim.task.id == first.id
    assert claim.task.status is TaskStatus.PROCESSING
    assert claim.attempt == 1 == claim.task.attempts
    assert claim.lease_expires_at == clock.now + timedelta(seconds=30)
    assert store.claim(worker_id="w2", lease_s=30).task.id == second.id
    assert store.claim(worker_id="w3", lease_s=30) is None


def test_heartbeat_renews_lease_and_records_progress(store, clock, account):
    store.create_task(new_task(account, clock))
    claim = store.claim(worker_id="w1", lease_s=30)
    clock.advance(20)

    beat = store.heartbeat(claim, progress=40, estimated_time_s=12, fps=7.5)

    assert beat.cancelled is False
    assert beat.lease_expires_at == clock.now + timedelta(seconds=30)
    task = store.get_task(claim.task.id)
    assert (task.progress, task.estimated_time_s, task.fps) == (40, 12, 7.5)
    clock.advance(25)  # past the first lease, within the renewed one
    assert store.reap(callback_body=render_body) == []


def test_heartbeat_reports_cancel(store, clock, account):
    store.create_task(new_task(account, clock))
    claim = store.claim(worker_id="w1", lease_s=30)
    store.cancel_task(claim.task.id, account_id=account.id, callback_body=render_body)

    assert store.heartbeat(claim, progress=50, estimated_time_s=1).cancelled is True
    with pytest.raises(LeaseLost):
        _complete(store, claim, clock)


def test_reaped_and_reclaimed_worker_is_fenced_out_and_charges_nothing(store, clock, account):
    task = store.create_task(new_task(account, clock, reserved=32))
    stale = store.claim(worker_id="w1", lease_s=30)
    clock.advance(31)
    reaped = store.reap(callback_body=render_body)
    assert [t.status for t in reaped] == [TaskStatus.PENDING]
    fresh = store.claim(worker_id="w2", lease_s=30)
    assert fresh.attempt == 2

    for write in (
        lambda: store.heartbeat(stale, progress=10, estimated_time_s=1),
        lambda: _complete(store, stale, clock),
        lambda: store.fail(stale, error=BOOM, retry=False, callback_body=render_body),
    ):
        with pytest.raises(LeaseLost):
            write()

    assert store.get_task(task.id).status is TaskStatus.PROCESSING
    assert ledger_sums(store, account.id)["capture"] == 0
    assert store.get_account(account.id).balance == 1000 - 32
    assert _complete(store, fresh, clock, charged=20).status is TaskStatus.COMPLETED


def test_same_worker_id_on_a_new_attempt_is_still_fenced(store, clock, account):
    store.create_task(new_task(account, clock))
    stale = store.claim(worker_id="w1", lease_s=30)
    clock.advance(31)
    store.reap(callback_body=render_body)
    store.claim(worker_id="w1", lease_s=30)

    with pytest.raises(LeaseLost):
        _complete(store, stale, clock)


def test_reap_fails_and_refunds_after_max_attempts(store, clock, account):
    task = store.create_task(new_task(account, clock, reserved=48))
    for attempt in range(1, 4):
        claim = store.claim(worker_id=f"w{attempt}", lease_s=10)
        assert claim.attempt == attempt
        clock.advance(11)
        store.reap(callback_body=render_body)

    ended = store.get_task(task.id)
    assert ended.status is TaskStatus.FAILED
    assert ended.error is not None
    assert ended.error.code == "service_error"
    assert ended.credits_charged == 0
    assert store.get_account(account.id).balance == 1000
    assert ledger_sums(store, account.id)["refund"] == 48
    assert [item.task_id for item in store.outbox_for_task(task.id)] == [task.id]
    assert store.claim(worker_id="w9", lease_s=10) is None


def test_reaper_applies_its_own_max_attempts(store, clock, account):
    task = store.create_task(new_task(account, clock))
    store.claim(worker_id="w1", lease_s=10)
    clock.advance(11)

    (touched,) = Reaper(store, callback_body=render_body, max_attempts=1).run_once()

    assert touched.id == task.id
    assert touched.status is TaskStatus.FAILED  # the store's default (3) would requeue it


def test_complete_captures_once_and_refunds_the_rest(store, clock, account):
    task = store.create_task(new_task(account, clock, reserved=32))
    claim = store.claim(worker_id="w1", lease_s=30)

    done = _complete(store, claim, clock, charged=16)

    assert done.status is TaskStatus.COMPLETED
    assert (done.progress, done.estimated_time_s) == (100, 0)
    assert done.credits_charged == 16
    assert done.result_key == f"{task.id}/1.mp4"
    assert done.video_duration_s == 1.2
    with pytest.raises(LeaseLost):
        _complete(store, claim, clock, charged=16)
    sums = ledger_sums(store, account.id)
    assert (sums["reserve"], sums["capture"], sums["refund"]) == (32, 16, 16)
    assert store.get_account(account.id).balance == 1000 - 16
    assert len(store.outbox_for_task(task.id)) == 1


def test_complete_never_charges_more_than_reserved(store, clock, account):
    store.create_task(new_task(account, clock, reserved=32))
    claim = store.claim(worker_id="w1", lease_s=30)

    assert _complete(store, claim, clock, charged=500).credits_charged == 32
    assert store.get_account(account.id).balance == 1000 - 32


def test_complete_without_callback_url_queues_no_callback(store, clock, account):
    task = store.create_task(new_task(account, clock, callback_url=None))
    _complete(store, store.claim(worker_id="w1", lease_s=30), clock)

    assert store.outbox_for_task(task.id) == []


def test_fail_with_retry_requeues_until_attempts_run_out(store, clock, account):
    task = store.create_task(new_task(account, clock, reserved=32))
    for delay in RETRY_DELAYS_S[:2]:  # attempts 1 and 2 of 3
        claim = store.claim(worker_id="w1", lease_s=30)
        again = store.fail(claim, error=BOOM, retry=True, callback_body=render_body)
        assert again.status is TaskStatus.PENDING
        assert again.error is None
        clock.advance(delay - 0.5)
        assert store.claim(worker_id="w1", lease_s=30) is None  # backing off
        clock.advance(0.5)

    last = store.claim(worker_id="w1", lease_s=30)
    ended = store.fail(last, error=BOOM, retry=True, callback_body=render_body)

    assert last.attempt == 3
    assert ended.status is TaskStatus.FAILED
    assert ended.error == BOOM
    assert store.get_account(account.id).balance == 1000
    assert store.outbox_for_task(task.id)[0].body == render_body(ended)


def test_fail_without_retry_ends_the_task_at_once(store, clock, account):
    store.create_task(new_task(account, clock))
    claim = store.claim(worker_id="w1", lease_s=30)

    ended = store.fail(claim, error=BOOM, retry=False, callback_body=render_body)

    assert ended.status is TaskStatus.FAILED
    assert ended.attempts == 1


def test_a_failing_callback_render_changes_nothing(store, clock, account):
    task = store.create_task(new_task(account, clock, reserved=32))
    claim = store.claim(worker_id="w1", lease_s=30)

    with pytest.raises(RuntimeError, match="renderer is down"):
        store.complete(
            claim,
            result_key="r.mp4",
            result_expires_at=clock.now,
            actual_duration_s=1,
            credits_charged=16,
            callback_body=_broken_body,
        )

    assert store.get_task(task.id) == claim.task
    assert store.get_account(account.id).balance == 1000 - 32
    assert [e.kind for e in store.ledger(account.id)] == ["grant", "reserve"]
    assert store.outbox_for_task(task.id) == []
    assert _complete(store, claim, clock, charged=16).status is TaskStatus.COMPLETED


def test_a_reap_that_fails_to_render_a_callback_requeues_nothing(store, clock, account):
    # Reaped in id order: "a" would be requeued before rendering "b"'s callback fails.
    retried = store.create_task(replace(new_task(account, clock), id="task-unified-1-bbbbbbbb"))
    clock.advance(1)
    fresh = store.create_task(replace(new_task(account, clock), id="task-unified-1-aaaaaaaa"))
    first = store.claim(worker_id="w1", lease_s=30)
    store.fail(first, error=BOOM, retry=True, callback_body=render_body)
    clock.advance(RETRY_DELAYS_S[0])
    store.claim(worker_id="w1", lease_s=30)
    store.claim(worker_id="w2", lease_s=30)
    clock.advance(31)

    with pytest.raises(RuntimeError, match="renderer is down"):
        store.reap(callback_body=_broken_body, max_attempts=2)

    after = [store.get_task(task.id) for task in (retried, fresh)]
    assert [(task.status, task.attempts) for task in after] == [
        (TaskStatus.PROCESSING, 2),
        (TaskStatus.PROCESSING, 1),
    ]
    assert store.get_account(account.id).balance == 1000 - 64
    assert [t.id for t in store.reap(callback_body=render_body, max_attempts=2)] == [
        fresh.id,
        retried.id,
    ]


def test_complete_keeps_the_engines_notes(store, clock, account):
    store.create_task(new_task(account, clock))
    claim = store.claim(worker_id="w1", lease_s=30)
    notes = ("the source is interlaced (TFF): deinterlaced", "a second note")

    done = store.complete(
        claim,
        result_key="k.mp4",
        result_expires_at=clock.now + timedelta(hours=24),
        actual_duration_s=1.2,
        credits_charged=20.0,
        callback_body=render_body,
        notes=notes,
    )

    assert done.notes == notes == store.get_task(claim.task.id).notes
