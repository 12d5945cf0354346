"""PostgreSQL restarted under a running task (a server of this test's own, restarted
for real with pg_ctl): while it is down the store answers DatabaseUnavailable, never
a crash; the worker keeps upscaling, and once the database is back the task
completes, charged once."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
from testkit.net import free_port

from tests.clips import make_clip
from tests.stores import FakeClock, ledger_sums, new_task, worker_settings
from upres.db.task_store import SqlTaskStore
from upres.domain.storage_keys import upload_key
from upres.domain.tasks import TaskStatus
from upres.domain.uploads import new_upload_id
from upres.errors import DatabaseUnavailable
from upres.storage import build_storage
from upres.wiring import open_store
from upres.worker_wiring import worker_from_settings

pytestmark = pytest.mark.slow


class Postgres:
    """A PostgreSQL cluster in ``folder``, run as the postgres user (root runs CI)."""

    def __init__(self, folder: Path) -> None:
        bins = sorted(Path("/usr/lib/postgresql").glob("*/bin"))
        if not bins or shutil.which("runuser") is None or os.geteuid() != 0:
            pytest.skip("needs PostgreSQL's server binaries and root (as .ci/run has)")
        self._bin, self._folder, self.port = bins[-1], folder, free_port()
        folder.mkdir(parents=True)
        shutil.chown(folder, "postgres")
        self._as_postgres("initdb", "-D", str(folder / "data"), "-A", "trust", "-U", "postgres")
        self.url = f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def start(self) -> None:
        self._ctl("start")

    def restart(self) -> None:
        self._ctl("restart", "-m", "fast")

    def stop(self) -> None:
        self._ctl("stop", "-m", "fast")

    def _ctl(self, *action: str) -> None:
        options = f"-p {self.port} -k {self._folder}"
        data, log = str(self._folder / "data"), str(self._folder / "log")
        self._as_postgres("pg_ctl", "-D", data, "-o", options, "-l", log, "-w", *action)

    def _as_postgres(self, program: str, *args: str) -> None:
        command = ["runuser", "-u", "postgres", "--", str(self._bin / program), *args]
        subprocess.run(command, check=True, capture_output=True, timeout=120)


@pytest.fixture
def postgres() -> Iterator[Postgres]:
    # Not under tmp_path: the postgres user must reach it (pytest's folders are 0700).
    folder = Path(tempfile.mkdtemp(prefix="upres-pg-"))
    folder.chmod(0o755)
    try:
        server = Postgres(folder / "cluster")
        server.start()
        yield server
        server.stop()
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def test_a_task_survives_a_database_restart_and_is_charged_once(
    postgres: Postgres, tmp_path: Path
) -> None:
    settings = worker_settings(tmp_path / "data", database_url=postgres.url)
    source = make_clip(tmp_path / "in.mp4", frames=72, fps=12)
    store = open_store(settings)
    assert isinstance(store, SqlTaskStore)
    try:
        upload_id = new_upload_id()
        build_storage(settings).put(source, upload_key(upload_id))
        account = store.create_account(user_group="default", credits=1000, webhook_secret="w")
        new = replace(new_task(account, FakeClock()), input_url=f"upres-upload://{upload_id}")
        task = store.create_task(new)
        down: list[Exception] = []
        before: list[TaskStatus] = []

        def restart_once_running() -> None:
            deadline = time.monotonic() + 120
            while store.get_task(task.id).progress == 0 and time.monotonic() < deadline:
                time.sleep(0.05)
            before.append(store.get_task(task.id).status)
            postgres.stop()
            try:
                store.get_task(task.id)
            except DatabaseUnavailable as exc:
                down.append(exc)
            postgres.start()

        restarter = threading.Thread(target=restart_once_running)
        restarter.start()
        with worker_from_settings(settings, worker_id="w1") as loop:
            assert loop.run_once()
            restarter.join()
            deadline = time.monotonic() + 120
            while not store.get_task(task.id).status.is_terminal:
                assert time.monotonic() < deadline, "the task did not end"
                if not loop.run_once():
                    time.sleep(0.5)
        done = store.get_task(task.id)
        sums = ledger_sums(store, account.id)
    finally:
        store.close()

    assert before == [TaskStatus.PROCESSING]  # restarted mid-task
    assert down, "the store answered while the database was down"
    assert done.status is TaskStatus.COMPLETED, done.error
    assert sums["capture"] == done.credits_charged
    assert sums["reserve"] == task.credits_reserved
