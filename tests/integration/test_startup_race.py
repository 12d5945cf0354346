"""Several upres processes starting at once on a fresh data directory all come
up: ``upres serve`` twice beside ``upres worker``, as replicas restarting
together would (issue: SQLite's switch of a new file to WAL answered
"database is locked" without waiting, and one process in ten exited)."""

from __future__ import annotations

import os
import subprocess
import threading
from pathlib import Path

import pytest
from testkit.net import free_port

from tests.integration.serve_harness import UPRES, Serve, wait_for

pytestmark = pytest.mark.slow

ROUNDS = 3


class _Worker:
    """``upres worker`` with no worker processes: the store and the housekeeping only."""

    def __init__(self, data_dir: Path, env: dict[str, str]) -> None:
        self.output: list[str] = []
        self._process = subprocess.Popen(
            [*UPRES, "worker", "--data-dir", str(data_dir), "--workers", "0"],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env=env,
        )
        threading.Thread(target=self._drain, daemon=True).start()

    def _drain(self) -> None:
        assert self._process.stdout is not None
        with self._process.stdout as lines:
            self.output.extend(lines)

    def ready(self) -> bool:
        if self._process.poll() is not None:
            raise AssertionError("upres worker exited:\n" + "".join(self.output))
        return any(line.startswith("upres worker:") for line in self.output)

    def stop(self) -> None:
        self._process.terminate()
        self._process.wait(30)


@pytest.mark.parametrize("round_", range(ROUNDS))
def test_three_processes_start_at_once_on_a_fresh_data_dir(tmp_path, round_):
    env = {**os.environ, "UPRES_DEVICE": "cpu"}
    data_dir = tmp_path / "data"
    serves = [Serve(data_dir, port=free_port(), env=env, args=("--workers", "0")) for _ in range(2)]
    for serve in serves:
        serve.launch()
    worker = _Worker(data_dir, env)
    try:
        for serve in serves:
            serve.wait_healthy()
        wait_for(worker.ready, timeout_s=180, what="upres worker to start")
        assert not any("database is locked" in line for s in serves for line in s.output)
    finally:
        for serve in serves:
            serve.stop()
        worker.stop()
