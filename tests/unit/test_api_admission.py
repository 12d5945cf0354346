"""The submission gate: its own threads, bounds per key and in all, slots held until done."""

from __future__ import annotations

import asyncio
import threading

import pytest

from upres.api.admission import SubmissionGate
from upres.errors import RateLimited, ServerBusy


async def _one_turn() -> None:
    """Let every task scheduled so far take its next step (a slot, a thread's work)."""
    await asyncio.sleep(0)


def test_bounds_per_key_then_in_all_and_slots_come_back() -> None:
    async def scenario() -> None:
        gate = SubmissionGate(threads=2, max_pending=3, max_per_key=2)
        release = threading.Event()
        running = [asyncio.ensure_future(gate.run(key, release.wait)) for key in "aab"]
        await _one_turn()
        assert gate.pending == 3
        with pytest.raises(RateLimited) as per_key:
            await gate.run("a", lambda: True)
        assert per_key.value.limit == 2
        with pytest.raises(ServerBusy) as busy:
            await gate.run("c", lambda: True)
        assert busy.value.retry_after_s >= 1
        release.set()
        assert await asyncio.gather(*running) == [True, True, True]
        assert gate.pending == 0
        assert await gate.run("a", lambda: threading.current_thread().name)
        gate.close()

    asyncio.run(scenario())


def test_work_runs_off_the_event_loop_thread() -> None:
    async def scenario() -> str:
        gate = SubmissionGate(threads=1, max_pending=1, max_per_key=1)
        try:
            return await gate.run("k", lambda: threading.current_thread().name)
        finally:
            gate.close()

    assert asyncio.run(scenario()).startswith("upres-submit")


def test_a_cancelled_wait_keeps_the_slot_until_the_thread_is_done() -> None:
    async def scenario() -> None:
        gate = SubmissionGate(threads=1, max_pending=5, max_per_key=1)
        release = threading.Event()
        waiting = asyncio.ensure_future(gate.run("k", release.wait))
        await _one_turn()
        waiting.cancel()
        await _one_turn()
        assert waiting.cancelled()
        with pytest.raises(RateLimited):
            await gate.run("k", lambda: True)
        release.set()
        # The gate's one thread frees the slot as it finishes the call, before it takes the next.
        await gate.run("other", lambda: None)
        assert gate.pending == 0
        assert await gate.run("k", lambda: True)
        gate.close()

    asyncio.run(scenario())


def test_bounds_must_be_positive() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        SubmissionGate(threads=1, max_pending=0, max_per_key=1)


def test_a_slot_held_before_its_thread_is_freed_by_the_thread_or_by_leaving_unused() -> None:
    async def scenario() -> None:
        gate = SubmissionGate(threads=1, max_pending=2, max_per_key=1)
        with gate.admitted("k"):
            assert gate.pending == 1
            with pytest.raises(RateLimited):
                gate.admitted("k").__enter__()
        assert gate.pending == 0  # left without running anything
        with pytest.raises(ValueError, match="body"), gate.admitted("k"):
            raise ValueError("the body failed before any thread")
        assert gate.pending == 0
        release = threading.Event()
        with gate.admitted("k") as on_thread:
            running = asyncio.ensure_future(on_thread(release.wait))
            await _one_turn()
        assert gate.pending == 1  # its thread still works
        release.set()
        assert await running is True
        assert gate.pending == 0
        gate.close()

    asyncio.run(scenario())
