"""Chunks across real processes: ``upres worker`` twice on one database (SQLite
and PostgreSQL), a worker SIGKILLed mid-chunk, ``upres serve`` SIGKILLed at
about 60% and restarted. The real engine with a small model on a tiny clip
cut into chunks of 0.5 s; the database says who ran what, the logs say how
often."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
from testkit.net import free_port

from tests.clips import make_clip
from tests.integration.serve_harness import (
    Client,
    Serve,
    WorkerProcess,
    create_key,
    wait_for,
)
from tests.stores import new_task, reset_postgres
from upres.clock import utc_now
from upres.config import Settings
from upres.db import create_db_engine
from upres.db.task_store import SqlTaskStore
from upres.domain.chunks import ChunkStatus
from upres.domain.storage_keys import upload_key
from upres.domain.tasks import Task
from upres.domain.uploads import new_upload_id
from upres.storage import build_storage
from upres.wiring import open_store

pytestmark = pytest.mark.slow

POSTGRES_URL = os.environ.get("UPRES_TEST_POSTGRES_URL")
FPS = 12
# A keyframe every 0.5 s: chunks are cut on keyframes.
KEYFRAME_EVERY_HALF_SECOND = {"g": "6"}
FRAMES = 48  # 4 s: eight chunks of 0.5 s
RUN = re.compile(r"runs chunk (\d+) of (\S+) \(attempt (\d+)\)")


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'data' / 'upres.db'}"
        return
    if not POSTGRES_URL:
        pytest.skip("UPRES_TEST_POSTGRES_URL is not set")
    engine = create_db_engine(POSTGRES_URL)
    reset_postgres(engine)
    engine.dispose()
    yield POSTGRES_URL


def environment(data_dir: Path, database_url: str) -> dict[str, str]:
    return {
        **os.environ,
        "UPRES_DATA_DIR": str(data_dir),
        "UPRES_DATABASE_URL": database_url,
        "UPRES_MODEL": "realesr-animevideov3",
        "UPRES_DEVICE": "cpu",
        "UPRES_TEMPORAL": "false",
        "UPRES_TORCH_THREADS": "1",
        "UPRES_CHUNK_SECONDS": "0.5",
        "UPRES_LEASE_S": "4",
        "UPRES_HEARTBEAT_S": "0.5",
        "UPRES_REAPER_INTERVAL_S": "0.5",
        "UPRES_WORKER_CONCURRENCY": "1",
        "UPRES_INITIAL_CREDITS": "0",
        "UPRES_RATE_LIMIT_PER_MINUTE": "100000",
    }


def settings_of(env: dict[str, str]) -> Settings:
    return Settings(data_dir=Path(env["UPRES_DATA_DIR"]), database_url=env["UPRES_DATABASE_URL"])


def submit(env: dict[str, str], store: SqlTaskStore, clip: Path) -> Task:
    """A task for a new account whose input is an upload of ``clip``."""
    upload_id = new_upload_id()
    build_storage(settings_of(env)).put(clip, upload_key(upload_id))
    account = store.create_account(user_group="default", credits=1000, webhook_secret="whsec_t")
    new = replace(new_task(account, utc_now), input_url=f"upres-upload://{upload_id}")
    return store.create_task(new)


def runs(output: list[str], task_id: str) -> list[tuple[int, int]]:
    """(chunk index, attempt) of every chunk run a log shows for the task."""
    found = (RUN.search(line) for line in output)
    return [(int(m[1]), int(m[3])) for m in found if m and m[2] == task_id]


def wait_started(worker: WorkerProcess) -> None:
    wait_for(
        lambda: any("starts; CUDA_VISIBLE_DEVICES" in line for line in worker.output),
        timeout_s=120,
        what="a worker process to start",
    )


def charged_once(store: SqlTaskStore, task: Task) -> list[str]:
    entries = store.ledger(task.account_id)
    return [entry.kind.value for entry in entries if entry.task_id == task.id]


@pytest.fixture
def clip(tmp_path: Path) -> Path:
    return make_clip(
        tmp_path / "in.mp4",
        width=96,
        height=64,
        frames=FRAMES,
        fps=FPS,
        encoder_options=KEYFRAME_EVERY_HALF_SECOND,
    )


@pytest.fixture
def deployment(tmp_path: Path, database_url: str) -> Iterator[tuple[dict[str, str], SqlTaskStore]]:
    env = environment(tmp_path / "data", database_url)
    store = open_store(settings_of(env))
    yield env, store
    store.close()


def test_two_worker_processes_run_one_tasks_chunks_each_once(deployment, clip):
    env, store = deployment
    workers = [WorkerProcess(Path(env["UPRES_DATA_DIR"]), env=env) for _ in range(2)]
    try:
        for worker in workers:
            wait_started(worker)
        task = submit(env, store, clip)
        owners: set[str] = set()

        def ended() -> bool:
            chunks = store.task_chunks(task.id)
            owners.update(c.worker_id for c in chunks if c.worker_id)
            return store.get_task(task.id).status.is_terminal

        wait_for(ended, timeout_s=240, what="the task to end")
    finally:
        for worker in workers:
            worker.stop()

    done = store.get_task(task.id)
    assert done.status.value == "completed", done.error
    each = [runs(worker.output, task.id) for worker in workers]
    assert all(each), "both workers ran chunks"
    assert sorted(each[0] + each[1]) == [(index, 1) for index in range(8)]
    assert len(owners) >= 2
    assert charged_once(store, done) == ["reserve", "capture"]


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_a_worker_killed_mid_chunk_loses_only_that_chunk(deployment, clip):
    env, store = deployment
    data_dir = Path(env["UPRES_DATA_DIR"])
    first = WorkerProcess(data_dir, env=env)
    wait_started(first)
    task = submit(env, store, clip)

    def mid_chunk() -> bool:
        states = [c.status for c in store.task_chunks(task.id)]
        return ChunkStatus.DONE in states and ChunkStatus.PROCESSING in states

    wait_for(mid_chunk, timeout_s=240, what="a chunk done and one running")
    first.kill()
    at_kill = store.task_chunks(task.id)
    finished = {c.index for c in at_kill if c.status is ChunkStatus.DONE}
    lost = {c.index for c in at_kill if c.status is ChunkStatus.PROCESSING}
    second = WorkerProcess(data_dir, env=env)
    try:
        wait_for(
            lambda: store.get_task(task.id).status.is_terminal,
            timeout_s=240,
            what="the task to end",
        )
    finally:
        second.stop()

    done = store.get_task(task.id)
    assert done.status.value == "completed", done.error
    after = runs(second.output, task.id)
    assert len(lost) == 1
    assert {index for index, _ in runs(first.output, task.id)} == finished | lost
    assert not finished & {index for index, _ in after}  # finished chunks are not run again
    assert sorted(after) == sorted(
        [(index, 2) for index in lost] + [(i, 1) for i in range(8) if i not in finished | lost]
    )
    assert charged_once(store, done) == ["reserve", "capture"]


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_serve_killed_at_60_percent_resumes_from_its_finished_chunks(deployment, clip):
    env, store = deployment
    data_dir = Path(env["UPRES_DATA_DIR"])
    key = create_key(data_dir, credits=1000, env=env)
    port = free_port()
    serve = Serve(data_dir, port=port, env=env).start()
    client = Client(serve.base_url, key.secret)
    upload = client.request(
        "POST", "/v1/uploads", content=clip.read_bytes(), headers={"Content-Type": "video/mp4"}
    ).json()
    task_id = client.submit(upload["url"])["id"]
    seen: list[int] = []

    def at_60() -> bool:
        seen.append(client.task(task_id)["progress"])
        return seen[-1] >= 60

    try:
        wait_for(at_60, timeout_s=240, what="60% progress")
    finally:
        serve.kill()
        client.close()
    chunks = store.task_chunks(task_id)
    finished = {c.index for c in chunks if c.status is ChunkStatus.DONE}
    floor = 100 * sum(c.frame_count for c in chunks if c.index in finished) // FRAMES
    assert finished
    restarted = Serve(data_dir, port=port, env=env).start()
    client = Client(restarted.base_url, key.secret)
    resumed: list[dict] = []

    def ended() -> bool:
        resumed.append(client.task(task_id))
        return resumed[-1]["status"] in ("completed", "failed")

    try:
        wait_for(ended, timeout_s=240, what="the task to end after the restart")
    finally:
        restarted.stop()
        client.close()

    assert resumed[-1]["status"] == "completed", resumed[-1]
    progress = [task["progress"] for task in resumed]
    assert min(progress) >= floor  # never below the chunks finished before the kill
    assert [seen[-1], *progress] == sorted([seen[-1], *progress])  # never backwards
    assert not finished & {index for index, _ in runs(restarted.output, task_id)}
    entries = [e.kind.value for e in store.ledger(key.account_id) if e.task_id == task_id]
    assert entries == ["reserve", "capture"]
