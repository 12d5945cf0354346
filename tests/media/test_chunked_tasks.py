"""A long task in chunks, end to end in one process: the real worker (store on
SQLite, local storage, the real engine with a small model), planned into
chunks, each run once, joined by one finaliser, billed once, parts deleted."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import Any

import av
import pytest

from tests.clips import make_clip
from tests.integration.serve_harness import wait_for
from tests.stores import ledger_sums, new_task, render_body, worker_settings
from upres import worker_wiring
from upres.config import Settings
from upres.db.task_store import SqlTaskStore
from upres.domain.chunks import ChunkStatus
from upres.domain.storage_keys import chunk_source_key, preview_key, upload_key
from upres.domain.tasks import Task, TaskStatus
from upres.domain.uploads import Upload, new_upload_id, upload_id_of
from upres.inputs.probe import probe
from upres.jobs.claim_loop import ClaimLoop
from upres.jobs.input_cache import chunk_source
from upres.storage import Janitor, build_storage
from upres.wiring import open_store
from upres.worker_wiring import worker_from_settings

FPS = 12
# A keyframe every 0.5 s: chunks are cut on keyframes.
KEYFRAME_EVERY_HALF_SECOND = {"g": "6"}
FRAMES = 24  # 2 s: four chunks of 0.5 s
# A worker that has not stopped after this long is stuck, not slow.
STUCK_S = 60.0


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return worker_settings(tmp_path / "data", chunk_seconds=0.5)


@pytest.fixture
def store(settings: Settings) -> Iterator[SqlTaskStore]:
    store = open_store(settings)
    yield store
    store.close()


@pytest.fixture
def source(tmp_path: Path) -> Path:
    return make_clip(
        tmp_path / "in.mp4", frames=FRAMES, fps=FPS, encoder_options=KEYFRAME_EVERY_HALF_SECOND
    )


def submit(store: SqlTaskStore, settings: Settings, source: Path, clock, **chosen: Any) -> Task:
    """A task whose input is an upload of ``source`` (with ``chosen`` fields of NewTask)."""
    upload_id = new_upload_id()
    build_storage(settings).put(source, upload_key(upload_id))
    account = store.create_account(user_group="default", credits=1000, webhook_secret="whsec_t")
    new = replace(new_task(account, clock), input_url=f"upres-upload://{upload_id}", **chosen)
    return store.create_task(new)


def work_until_ended(loop: ClaimLoop, store: SqlTaskStore, task_id: str) -> Task:
    for _ in range(50):
        loop.run_once()
        task = store.get_task(task_id)
        if task.status.is_terminal:
            return task
    raise AssertionError("the task did not end")


def frame_times(path: Path) -> list[float]:
    with av.open(str(path)) as container:
        return [float(frame.time) for frame in container.decode(video=0)]


def test_a_long_task_runs_in_chunks_joined_once_and_billed_once(
    store, settings, source, clock, tmp_path
):
    task = submit(store, settings, source, clock)

    with worker_from_settings(settings, worker_id="w1") as loop:
        assert loop.run_once()  # claims the task and plans it
        chunks = store.task_chunks(task.id)
        assert len(chunks) == 4
        assert sum(chunk.frame_count for chunk in chunks) == FRAMES
        done = work_until_ended(loop, store, task.id)

    assert done.status is TaskStatus.COMPLETED, done.error
    assert done.progress == 100
    result = tmp_path / "result.mp4"
    storage = build_storage(settings)
    storage.copy_to(done.result_key, result)
    assert frame_times(result) == pytest.approx(frame_times(source), abs=1e-3)
    assert ledger_sums(store, done.account_id)["capture"] == done.credits_charged
    assert store.task_chunks(task.id) == []  # parts deleted, rows forgotten
    assert not storage.exists(chunk_source_key(task.id))
    assert not (settings.data_dir / "results" / task.id / "chunks").exists() or not any(
        (settings.data_dir / "results" / task.id / "chunks").iterdir()
    )
    # The task named no network: its chunks' speed is the worker's default's.
    assert [m.network for m in store.measured_throughputs()] == [settings.model]


def test_every_chunk_runs_the_tasks_network_and_the_charge_has_its_price(
    store, settings, source, clock, monkeypatch
):
    # The worker's own default is the slow general network; the task chose the
    # compact one, priced at 1.5 times the factor's price.
    chosen = "realesr-animevideov3"
    worker_settings = settings.model_copy(
        update={"model": "realesrgan-x4plus", "network_prices": {chosen: 1.5}}
    )
    asked: list[tuple[str | None, int | None]] = []
    resolve = worker_wiring.resolve_model

    def spy(network: str, denoise: int | None = None):
        asked.append((network, denoise))
        return resolve(network, denoise)

    monkeypatch.setattr(worker_wiring, "resolve_model", spy)
    task = submit(store, settings, source, clock, network=chosen, credits_reserved=100.0)

    with worker_from_settings(worker_settings, worker_id="w1") as loop:
        done = work_until_ended(loop, store, task.id)

    assert done.status is TaskStatus.COMPLETED, done.error
    assert asked == [(chosen, None)] * 4  # one upscaler asked for per chunk, all the task's
    assert done.network == chosen
    # 2 s of video at 2x: 2 started seconds at 16 credits, times 1.5.
    assert done.credits_charged == 48.0
    assert ledger_sums(store, done.account_id)["refund"] == 52.0
    # Its chunks' speed is recorded as the chosen network's, not the worker's default's.
    assert [m.network for m in store.measured_throughputs()] == [chosen]


def test_two_workers_share_one_tasks_chunks_each_chunk_once(store, settings, source, clock, caplog):
    task = submit(store, settings, source, clock)
    caplog.set_level(logging.INFO, logger="upres.jobs.claim_loop")

    def work(name: str) -> None:
        with worker_from_settings(settings, worker_id=name) as loop:
            while not store.get_task(task.id).status.is_terminal:
                if not loop.run_once():
                    threading.Event().wait(0.05)

    threads = [threading.Thread(target=work, args=(name,)) for name in ("a", "b")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=300)

    assert store.get_task(task.id).status is TaskStatus.COMPLETED
    ran = [
        (record.args[0], record.args[1]) for record in caplog.records if "runs chunk" in record.msg
    ]
    assert sorted(index for _, index in ran) == [0, 1, 2, 3]
    assert {worker for worker, _ in ran} == {"a", "b"}


def test_a_chunk_that_cannot_be_decoded_fails_the_task_and_refunds(
    store, settings, tmp_path, clock
):
    source = make_clip(
        tmp_path / "in.mp4", frames=FRAMES, fps=FPS, encoder_options=KEYFRAME_EVERY_HALF_SECOND
    )
    task = submit(store, settings, source, clock)
    with worker_from_settings(settings, worker_id="w1") as loop:
        loop.run_once()
        # The stored input goes bad after planning: every chunk fails to decode.
        junk = tmp_path / "junk"
        junk.write_bytes(b"junk")
        storage = build_storage(settings)
        storage.put(junk, chunk_source(task, storage))
        done = work_until_ended(loop, store, task.id)

    assert done.status is TaskStatus.FAILED
    assert done.credits_charged == 0
    assert ChunkStatus.FAILED in {c.status for c in store.task_chunks(task.id)}


def test_a_running_chunk_shows_a_preview_and_a_cancel_stops_it_and_the_rest(
    store, settings, tmp_path, clock
):
    big = make_clip(
        tmp_path / "big.mp4",
        width=192,
        height=144,
        frames=FRAMES,
        fps=FPS,
        encoder_options=KEYFRAME_EVERY_HALF_SECOND,
    )
    task = submit(store, settings, big, clock)
    with worker_from_settings(settings, worker_id="w1") as loop:
        loop.run_once()  # plans
        running = threading.Thread(target=loop.run_once)
        running.start()
        storage = build_storage(settings)
        wait_for(
            lambda: storage.exists(preview_key(task.id)),
            timeout_s=60,
            what="a running chunk to store a preview",
        )
        store.cancel_task(task.id, account_id=task.account_id, callback_body=render_body)
        running.join(timeout=STUCK_S)
        assert not running.is_alive()  # the cancel stopped the running chunk
        assert not loop.run_once()  # no chunk of a cancelled task is claimed

    ended = store.get_task(task.id)
    assert ended.status is TaskStatus.CANCELLED
    assert ended.result_key is None
    assert ledger_sums(store, task.account_id)["capture"] == 0


def test_the_chunks_read_the_upload_in_place_and_it_outlives_its_expiry_while_the_task_runs(
    store, settings, source, clock, tmp_path
):
    task = submit(store, settings, source, clock)
    upload_id = upload_id_of(task.input_url)
    assert upload_id is not None
    info = probe(source, limits=settings.media_limits)
    store.add_upload(
        Upload(
            id=upload_id,
            account_id=task.account_id,
            filename="in.mp4",
            size_bytes=source.stat().st_size,
            duration_s=info.duration_s,
            width=info.width,
            height=info.height,
            frame_count=info.frame_count,
            average_fps=info.average_fps,
            created_at=clock(),
            expires_at=clock() + timedelta(seconds=1),
        )
    )
    storage = build_storage(settings)
    past_expiry = clock() + timedelta(days=1)
    janitor = Janitor(store, storage, lambda: past_expiry, uploads=store)

    with worker_from_settings(settings, worker_id="w1") as loop:
        assert loop.run_once()  # plans: the upload is the chunks' source, not a copy
        assert chunk_source(task, storage) == upload_key(upload_id)
        assert not storage.exists(chunk_source_key(task.id))
        assert janitor.run_once() == 0  # expired, but the running task reads it
        assert storage.exists(upload_key(upload_id))
        done = work_until_ended(loop, store, task.id)

    assert done.status is TaskStatus.COMPLETED, done.error
    result = tmp_path / "result.mp4"
    storage.copy_to(done.result_key, result)
    assert frame_times(result) == pytest.approx(frame_times(source), abs=1e-3)
    assert janitor.run_once() == 1  # the task ended: the expired upload goes
    assert not storage.exists(upload_key(upload_id))
