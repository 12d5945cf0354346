"""The chunk table as a second queue: planning, claim order, lease, heartbeat,
fencing, reap, the one finaliser, and billing once (re-run on PostgreSQL)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

import pytest

from tests.stores import ledger_sums, new_task, render_body
from upres.domain.chunks import ChunkStatus
from upres.domain.storage_keys import chunk_output_key, chunk_source_key
from upres.domain.tasks import TaskError, TaskStatus
from upres.errors import LeaseLost
from upres.storage import Janitor, MemoryStorage

BAD = TaskError(code="video_decode_failed", message="broken chunk")


@dataclass(frozen=True, kw_only=True)
class Span:
    index: int
    first_frame: int
    frame_count: int
    start_s: float
    end_s: float


def spans(*counts: int) -> list[Span]:
    """Consecutive spans of ``counts`` frames at 10 fps."""
    out, first = [], 0
    for index, count in enumerate(counts):
        out.append(
            Span(
                index=index,
                first_frame=first,
                frame_count=count,
                start_s=first / 10,
                end_s=(first + count) / 10,
            )
        )
        first += count
    return out


def planned(store, clock, account, *counts):
    """A task claimed and planned into chunks of ``counts`` frames."""
    task = store.create_task(new_task(account, clock))
    claim = store.claim(worker_id="planner", lease_s=30)
    assert claim.task.id == task.id
    store.insert_chunks(claim, spans(*counts))
    return task


def _finish(store, chunk_claim):
    key = f"{chunk_claim.task.id}/chunks/{chunk_claim.chunk.index}-{chunk_claim.attempt}.mp4"
    return store.finish_chunk(chunk_claim, part_key=key)


def _complete(store, claim, clock, charged=20.0):
    return store.complete(
        claim,
        result_key=f"{claim.task.id}/attempt-{claim.attempt}.mp4",
        result_expires_at=clock.now + timedelta(hours=24),
        actual_duration_s=2.0,
        credits_charged=charged,
        callback_body=render_body,
    )


def test_planning_makes_pending_chunks_and_releases_the_task_lease(store, clock, account):
    task = planned(store, clock, account, 10, 30, 20)
    clock.advance(120)  # far past the planner's lease

    assert store.reap(callback_body=render_body) == []
    assert store.get_task(task.id).status is TaskStatus.PROCESSING
    chunks = store.task_chunks(task.id)
    assert [(c.index, c.first_frame, c.frame_count) for c in chunks] == [
        (0, 0, 10),
        (1, 10, 30),
        (2, 40, 20),
    ]
    assert {c.status for c in chunks} == {ChunkStatus.PENDING}
    assert store.claim(worker_id="w", lease_s=30) is None  # the task itself is not queued again


def test_the_planners_claim_is_fenced_out_once_planned(store, clock, account):
    store.create_task(new_task(account, clock))
    claim = store.claim(worker_id="planner", lease_s=30)
    store.insert_chunks(claim, spans(5, 5))

    with pytest.raises(LeaseLost):
        store.heartbeat(claim, progress=50, estimated_time_s=1)
    with pytest.raises(LeaseLost):
        _complete(store, claim, clock)


def test_longest_chunk_first_within_a_task(store, clock, account):
    planned(store, clock, account, 10, 30, 20)

    claims = [store.claim_chunk(worker_id=f"w{i}", lease_s=30) for i in range(4)]

    assert [c.chunk.frame_count for c in claims[:3]] == [30, 20, 10]
    assert claims[3] is None
    assert [c.attempt for c in claims[:3]] == [1, 1, 1]


def test_workers_spread_over_tasks_by_chunks_in_flight(store, clock, account):
    big = planned(store, clock, account, 10, 10, 10, 10)
    clock.advance(1)
    small = planned(store, clock, account, 10, 10)

    order = [store.claim_chunk(worker_id=f"w{i}", lease_s=30).task.id for i in range(5)]

    # The older task first, then the one with fewer chunks running, in turns.
    assert order == [big.id, small.id, big.id, small.id, big.id]


def test_no_chunk_of_an_ended_task_is_claimed(store, clock, account):
    task = planned(store, clock, account, 10, 10)
    store.cancel_task(task.id, account_id=account.id, callback_body=render_body)

    assert store.claim_chunk(worker_id="w", lease_s=30) is None


def test_heartbeats_give_the_task_progress_speed_and_time_of_all_its_workers(store, clock, account):
    task = planned(store, clock, account, 100, 100)
    first = store.claim_chunk(worker_id="w1", lease_s=30)
    second = store.claim_chunk(worker_id="w2", lease_s=30)
    clock.advance(10)

    beat = store.heartbeat_chunk(first, frames_done=50, fps=5.0)
    store.heartbeat_chunk(second, frames_done=30, fps=3.0)

    assert beat.cancelled is False
    assert beat.lease_expires_at == clock.now + timedelta(seconds=30)
    seen = store.get_task(task.id)
    assert seen.progress == 40  # 80 of 200 frames
    assert seen.fps == 8.0
    assert seen.estimated_time_s == 15  # 120 frames left at 8 frames/s
    store.heartbeat_chunk(first, frames_done=10, fps=5.0)  # a late, smaller report
    assert store.get_task(task.id).progress == 40


def test_a_chunk_heartbeat_is_fenced_by_owner_and_attempt(store, clock, account):
    planned(store, clock, account, 10)
    claim = store.claim_chunk(worker_id="w1", lease_s=30)
    clock.advance(31)
    store.reap(callback_body=render_body)
    again = store.claim_chunk(worker_id="w2", lease_s=30)

    assert again.attempt == 2
    with pytest.raises(LeaseLost):
        store.heartbeat_chunk(claim, frames_done=5)
    with pytest.raises(LeaseLost):
        _finish(store, claim)
    store.heartbeat_chunk(again, frames_done=5)


def test_the_last_chunk_done_makes_its_worker_the_one_finaliser(store, clock, account):
    task = planned(store, clock, account, 10, 20)
    first = store.claim_chunk(worker_id="w1", lease_s=30)
    second = store.claim_chunk(worker_id="w2", lease_s=30)

    assert _finish(store, first) is None
    assert store.get_task(task.id).progress == 66  # never below the finished chunks
    final = _finish(store, second)

    assert final is not None
    assert (final.task.id, final.worker_id, final.attempt) == (task.id, "w2", 2)
    assert store.claim_chunk(worker_id="w3", lease_s=30) is None
    done = _complete(store, final, clock, charged=20.0)
    assert done.status is TaskStatus.COMPLETED
    assert ledger_sums(store, account.id)["capture"] == 20.0
    assert [c.status for c in store.task_chunks(task.id)] == [ChunkStatus.DONE] * 2
    assert all(c.part_key for c in store.task_chunks(task.id))


def test_a_dead_worker_loses_only_its_chunk(store, clock, account):
    task = planned(store, clock, account, 10, 10, 10)
    kept = store.claim_chunk(worker_id="w1", lease_s=30)
    _finish(store, kept)
    lost = store.claim_chunk(worker_id="w2", lease_s=30)
    store.heartbeat_chunk(lost, frames_done=8, fps=4.0)
    progress = store.get_task(task.id).progress
    clock.advance(31)

    assert store.reap(callback_body=render_body) == []

    chunks = {c.index: c for c in store.task_chunks(task.id)}
    assert chunks[kept.chunk.index].status is ChunkStatus.DONE
    assert chunks[lost.chunk.index].status is ChunkStatus.PENDING
    assert chunks[lost.chunk.index].attempts == 1
    assert store.get_task(task.id).progress == progress  # never backwards


def test_a_chunk_whose_workers_keep_dying_fails_the_task_once_refunded(store, clock, account):
    task = planned(store, clock, account, 10, 10)
    for _ in range(3):
        assert store.claim_chunk(worker_id="w", lease_s=30) is not None
        store.claim_chunk(worker_id="other", lease_s=30)
        clock.advance(31)
        reaped = store.reap(callback_body=render_body)

    assert [t.id for t in reaped] == [task.id]
    ended = store.get_task(task.id)
    assert ended.status is TaskStatus.FAILED
    assert ended.error.code == "service_error"
    sums = ledger_sums(store, account.id)
    assert (sums["capture"], sums["refund"]) == (0.0, sums["reserve"])
    assert len(store.outbox_for_task(task.id)) == 1


def test_a_transient_chunk_failure_retries_that_chunk_after_a_delay(store, clock, account):
    task = planned(store, clock, account, 10, 10)
    claim = store.claim_chunk(worker_id="w1", lease_s=30)
    other = store.claim_chunk(worker_id="w2", lease_s=30)

    store.fail_chunk(claim, error=BAD, retry=True, callback_body=render_body)

    assert store.get_task(task.id).status is TaskStatus.PROCESSING
    assert store.claim_chunk(worker_id="w3", lease_s=30) is None  # backing off
    clock.advance(11)
    again = store.claim_chunk(worker_id="w3", lease_s=30)
    assert (again.chunk.index, again.attempt) == (claim.chunk.index, 2)
    assert store.heartbeat_chunk(other, frames_done=1).cancelled is False


def test_a_chunk_that_fails_for_good_fails_the_task_and_stops_the_others(store, clock, account):
    task = planned(store, clock, account, 10, 10, 10)
    broken = store.claim_chunk(worker_id="w1", lease_s=30)
    running = store.claim_chunk(worker_id="w2", lease_s=30)

    failed = store.fail_chunk(broken, error=BAD, retry=False, callback_body=render_body)

    assert failed.status is TaskStatus.FAILED
    assert failed.error == BAD
    assert store.heartbeat_chunk(running, frames_done=5).cancelled is True
    with pytest.raises(LeaseLost):
        _finish(store, running)
    assert store.claim_chunk(worker_id="w3", lease_s=30) is None
    sums = ledger_sums(store, account.id)
    assert (sums["capture"], sums["refund"]) == (0.0, sums["reserve"])
    assert len(store.outbox_for_task(task.id)) == 1


def test_cancel_reaches_every_running_chunk(store, clock, account):
    task = planned(store, clock, account, 10, 10)
    claims = [store.claim_chunk(worker_id=f"w{i}", lease_s=30) for i in range(2)]

    store.cancel_task(task.id, account_id=account.id, callback_body=render_body)

    assert [store.heartbeat_chunk(c, frames_done=3).cancelled for c in claims] == [True, True]
    assert ledger_sums(store, account.id)["capture"] == 0.0


def test_a_dead_finaliser_hands_the_join_on_with_progress_kept(store, clock, account):
    task = planned(store, clock, account, 10, 10)
    for worker in ("w1", "w2"):
        final = _finish(store, store.claim_chunk(worker_id=worker, lease_s=30))
    clock.advance(31)

    store.reap(callback_body=render_body)

    assert store.get_task(task.id).progress == 99
    claim = store.claim(worker_id="w3", lease_s=30)
    assert (claim.task.id, claim.attempt) == (task.id, final.attempt + 1)
    assert all(c.status is ChunkStatus.DONE for c in store.task_chunks(task.id))
    store.insert_chunks(claim, spans(20))  # planned before: its chunks stay
    assert len(store.task_chunks(task.id)) == 2


def test_chunks_of_ended_tasks_are_leftovers_until_forgotten(store, clock, account):
    running = planned(store, clock, account, 10, 10)
    cancelled = planned(store, clock, account, 10, 10)
    store.cancel_task(cancelled.id, account_id=account.id, callback_body=render_body)

    assert {c.task_id for c in store.chunk_leftovers()} == {cancelled.id}
    store.forget_chunks(running.id)  # not ended: kept
    store.forget_chunks(cancelled.id)
    assert store.chunk_leftovers() == []
    assert len(store.task_chunks(running.id)) == 2


def test_a_done_chunk_names_the_worker_that_ran_it(store, clock, account):
    task = planned(store, clock, account, 10, 10)
    _finish(store, store.claim_chunk(worker_id="w1", lease_s=30))
    store.claim_chunk(worker_id="w2", lease_s=30)

    assert [(c.status, c.worker_id) for c in store.task_chunks(task.id)] == [
        (ChunkStatus.DONE, "w1"),
        (ChunkStatus.PROCESSING, "w2"),
    ]


def test_the_janitor_deletes_the_parts_of_ended_tasks(store, clock, account, tmp_path):
    storage = MemoryStorage()
    part = tmp_path / "part.mp4"
    part.write_bytes(b"part")
    task = planned(store, clock, account, 10, 10)
    kept = planned(store, clock, account, 10)
    done = store.claim_chunk(worker_id="w1", lease_s=30)
    storage.put(part, chunk_output_key(task.id, done.chunk.index, 1))
    _finish(store, done)
    dead = store.claim_chunk(worker_id="w2", lease_s=30)  # stores its part, dies unrecorded
    storage.put(part, chunk_output_key(dead.task.id, dead.chunk.index, 1))
    storage.put(part, chunk_output_key(kept.id, 0, 1))
    storage.put(part, chunk_source_key(task.id))
    store.cancel_task(task.id, account_id=account.id, callback_body=render_body)

    Janitor(store, storage, clock, chunks=store).run_once()

    assert not storage.exists(chunk_output_key(task.id, 0, 1))
    assert not storage.exists(chunk_output_key(task.id, 1, 1))
    assert not storage.exists(chunk_source_key(task.id))
    assert storage.exists(chunk_output_key(kept.id, 0, 1))  # its task still runs
    assert store.task_chunks(task.id) == []


def test_chunk_counts_by_status_are_of_running_tasks_only(store, clock, account):
    running = planned(store, clock, account, 10, 20, 30)
    running_claim = store.claim_chunk(worker_id="w1", lease_s=30)
    assert running_claim.task.id == running.id
    ended = planned(store, clock, account, 5, 5)
    store.cancel_task(ended.id, account_id=account.id, callback_body=render_body)

    counts = store.count_chunks_by_status()

    assert counts == {
        ChunkStatus.PENDING: 2,
        ChunkStatus.PROCESSING: 1,
        ChunkStatus.DONE: 0,
        ChunkStatus.FAILED: 0,
    }


def test_backlog_names_the_oldest_pending_work_and_each_busy_workers_speed(store, clock, account):
    assert store.backlog().oldest_pending_task is None
    assert store.backlog().oldest_pending_chunk is None
    waiting_since = clock()
    planned(store, clock, account, 10, 20)
    clock.advance(5)
    store.create_task(new_task(account, clock))  # a short task, pending
    chunk = store.claim_chunk(worker_id="w1", lease_s=30)
    store.heartbeat_chunk(chunk, frames_done=4, fps=2.5)

    backlog = store.backlog()

    assert backlog.oldest_pending_task == clock()
    assert backlog.oldest_pending_chunk == waiting_since
    assert backlog.worker_fps == {"w1": 2.5}
    task_claim = store.claim(worker_id="w2", lease_s=30)
    store.heartbeat(task_claim, progress=10, estimated_time_s=5, fps=7.0)
    assert store.backlog().worker_fps == {"w1": 2.5, "w2": 7.0}
    assert store.backlog().oldest_pending_task is None


def test_backlog_tells_each_workers_megapixels_per_second_once_the_frame_size_is_known(
    store, clock, account
):
    planned(store, clock, account, 10, 20)
    chunk = store.claim_chunk(worker_id="w1", lease_s=30)
    store.heartbeat_chunk(chunk, frames_done=4, fps=2.5)
    assert store.backlog().worker_mpx_per_s == {}  # no frame size yet

    store.heartbeat_chunk(chunk, frames_done=6, fps=2.5, frame_mpx=8.2944)  # 3840x2160
    store.create_task(new_task(account, clock))
    task_claim = store.claim(worker_id="w2", lease_s=30)
    store.heartbeat(task_claim, progress=10, estimated_time_s=5, fps=7.0, frame_mpx=0.9216)

    backlog = store.backlog()
    assert backlog.worker_fps == {"w1": 2.5, "w2": 7.0}
    assert backlog.worker_mpx_per_s == pytest.approx({"w1": 20.736, "w2": 6.4512})
