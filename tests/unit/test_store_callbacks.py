"""The callback outbox: claims under a lease, attempts recorded by the holder, retries."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from datetime import timedelta

import pytest

from tests.stores import new_task, render_body
from upres.domain.records import CallbackAttempt
from upres.errors import LeaseLost, NotFound

LEASE_S = 60


def _queue_callbacks(store, clock, account, count=1):
    """``count`` cancelled tasks' callbacks, due one second apart; returns their task ids."""
    ids = []
    for _ in range(count):
        task = store.create_task(new_task(account, clock, reserved=1))
        store.cancel_task(task.id, account_id=account.id, callback_body=render_body)
        ids.append(task.id)
        clock.advance(1)
    return ids


def _claim(store, dispatcher_id, limit=10):
    return store.claim_callbacks(dispatcher_id=dispatcher_id, limit=limit, lease_s=LEASE_S)


def _record(store, clock, item, dispatcher_id, *, delivered, retry_in_s=None, attempt=None):
    """Record ``item``'s next attempt (or ``attempt``) as ``dispatcher_id`` made it."""
    next_attempt_at = None if retry_in_s is None else clock.now + timedelta(seconds=retry_in_s)
    store.record_callback_attempt(
        CallbackAttempt(
            outbox_id=item.id,
            attempt=item.attempts + 1 if attempt is None else attempt,
            status_code=204 if delivered else 500,
            error=None,
            delivered=delivered,
            at=clock.now,
        ),
        dispatcher_id=dispatcher_id,
        next_attempt_at=next_attempt_at,
    )


def test_callback_retries_are_recorded_until_delivered(store, clock, account):
    _queue_callbacks(store, clock, account)
    (item,) = _claim(store, "d1")
    _record(store, clock, item, "d1", delivered=False, retry_in_s=1)
    assert _claim(store, "d1") == []
    clock.advance(1)
    (again,) = _claim(store, "d1")
    assert again.attempts == 1
    _record(store, clock, again, "d1", delivered=True)

    clock.advance(100)
    assert _claim(store, "d1") == []
    assert [(a.attempt, a.status_code, a.delivered) for a in store.callback_attempts(item.id)] == [
        (1, 500, False),
        (2, 204, True),
    ]


def test_callback_given_up_is_no_longer_due(store, clock, account):
    _queue_callbacks(store, clock, account)
    (item,) = _claim(store, "d1")
    _record(store, clock, item, "d1", delivered=False)

    clock.advance(100)
    assert _claim(store, "d1") == []


def test_dispatchers_claiming_at_the_same_moment_get_disjoint_callbacks(store, clock, account):
    first, second, third = _queue_callbacks(store, clock, account, count=3)

    by_d1 = _claim(store, "d1", limit=2)
    by_d2 = _claim(store, "d2", limit=2)

    assert [item.task_id for item in by_d1] == [first, second]
    assert [item.task_id for item in by_d2] == [third]
    assert _claim(store, "d3") == []


def test_a_callback_is_due_again_once_its_lease_runs_out(store, clock, account):
    _queue_callbacks(store, clock, account)
    (held,) = _claim(store, "d1")
    clock.advance(LEASE_S - 1)
    assert _claim(store, "d2") == []

    clock.advance(1)
    (taken,) = _claim(store, "d2")

    assert (taken.id, taken.attempts) == (held.id, 0)
    with pytest.raises(LeaseLost):
        _record(store, clock, held, "d1", delivered=True)
    assert store.callback_attempts(held.id) == []
    _record(store, clock, taken, "d2", delivered=True)
    assert [a.delivered for a in store.callback_attempts(held.id)] == [True]


def test_a_holder_whose_lease_ran_out_records_while_nobody_took_over(store, clock, account):
    _queue_callbacks(store, clock, account)
    (item,) = _claim(store, "d1")
    clock.advance(LEASE_S + 5)

    _record(store, clock, item, "d1", delivered=True)

    assert _claim(store, "d2") == []
    assert len(store.callback_attempts(item.id)) == 1


def test_recording_an_attempt_releases_the_lease(store, clock, account):
    _queue_callbacks(store, clock, account)
    (item,) = _claim(store, "d1")
    _record(store, clock, item, "d1", delivered=False, retry_in_s=2)

    clock.advance(2)  # the retry is due long before the lease would have run out
    (retry,) = _claim(store, "d2")

    assert (retry.id, retry.attempts) == (item.id, 1)
    with pytest.raises(LeaseLost):  # the first holder cannot record a second attempt on it
        _record(store, clock, retry, "d1", delivered=True)


def test_an_attempt_is_recorded_only_by_its_holder_and_only_once(store, clock, account):
    first, second = _queue_callbacks(store, clock, account, count=2)
    (item,) = _claim(store, "d1", limit=1)
    (unclaimed,) = store.outbox_for_task(second)
    assert item.task_id == first

    for who, target, number in (("d2", item, 1), ("d1", unclaimed, 1), ("d1", item, 2)):
        with pytest.raises(LeaseLost):
            _record(store, clock, target, who, delivered=False, retry_in_s=1, attempt=number)
    _record(store, clock, item, "d1", delivered=False, retry_in_s=1)
    with pytest.raises(LeaseLost):
        _record(store, clock, item, "d1", delivered=False, retry_in_s=1)
    with pytest.raises(NotFound):
        _record(store, clock, replace(item, id=item.id + 100), "d1", delivered=True)

    assert [a.attempt for a in store.callback_attempts(item.id)] == [1]
    assert store.callback_attempts(unclaimed.id) == []


def test_concurrent_dispatchers_never_share_a_callback(store, clock, account):
    _queue_callbacks(store, clock, account, count=12)

    def drain(dispatcher: int) -> list[int]:
        got: list[int] = []
        for _ in range(12):  # bounded: a claim that hands out held items must fail, not hang
            claimed = _claim(store, f"d{dispatcher}", limit=2)
            if not claimed:
                break
            got.extend(item.id for item in claimed)
        return got

    with ThreadPoolExecutor(max_workers=4) as pool:
        claimed = [item_id for ids in pool.map(drain, range(4)) for item_id in ids]

    assert len(claimed) == 12 == len(set(claimed))
