"""Runs ``upres serve`` as a real process for end-to-end tests, and talks to it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

UPRES = [sys.executable, "-m", "upres.cli"]
START_TIMEOUT_S = 180.0


@dataclass(frozen=True, kw_only=True)
class CreatedKey:
    """What ``upres keys create`` printed: the key is its last line."""

    secret: str
    account_id: str
    webhook_secret: str


def create_key(data_dir: Path, *, credits: float, env: dict[str, str]) -> CreatedKey:
    done = subprocess.run(
        [*UPRES, "keys", "create", "--data-dir", str(data_dir), "--credits", str(credits)],
        capture_output=True,
        text=True,
        env=env,
        check=True,
        timeout=120,
    )
    lines = done.stdout.strip().splitlines()
    fields = dict(line.split(": ", 1) for line in lines[:-1] if ": " in line)
    return CreatedKey(
        secret=lines[-1], account_id=fields["account"], webhook_secret=fields["webhook secret"]
    )


class Serve:
    """``upres serve`` in its own process group, so a test can kill all of it at once."""

    def __init__(
        self, data_dir: Path, *, port: int, env: dict[str, str], args: tuple[str, ...] = ()
    ) -> None:
        self.data_dir, self.port, self._env, self._args = data_dir, port, env, args
        self.base_url = f"http://127.0.0.1:{port}"
        self.output: list[str] = []
        self._process: subprocess.Popen[str] | None = None

    @property
    def pid(self) -> int:
        assert self._process is not None
        return self._process.pid

    def start(self) -> Serve:
        self.launch()
        self.wait_healthy()
        return self

    def launch(self) -> None:
        """Start the process without waiting for it (``wait_healthy`` does)."""
        self._process = subprocess.Popen(
            [
                *UPRES,
                "serve",
                "--port",
                str(self.port),
                "--data-dir",
                str(self.data_dir),
                *self._args,
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env=self._env,
            start_new_session=True,
        )
        threading.Thread(target=self._drain, daemon=True).start()

    def wait_healthy(self) -> None:
        wait_for(self._healthy, timeout_s=START_TIMEOUT_S, what="upres serve to become healthy")

    def kill(self) -> None:
        """SIGKILL the API and every worker: a crash, not a shutdown."""
        assert self._process is not None
        os.killpg(self._process.pid, signal.SIGKILL)
        self._process.wait(30)

    def stop(self) -> None:
        assert self._process is not None
        if self._process.poll() is None:
            os.killpg(self._process.pid, signal.SIGTERM)
            try:
                self._process.wait(30)
            except subprocess.TimeoutExpired:
                self.kill()

    def _drain(self) -> None:
        assert self._process is not None
        assert self._process.stdout is not None
        with self._process.stdout as lines:
            self.output.extend(lines)

    def _healthy(self) -> bool:
        assert self._process is not None
        if self._process.poll() is not None:
            raise AssertionError("upres serve exited:\n" + "".join(self.output))
        try:
            with httpx.Client(timeout=2) as http:
                return http.get(f"{self.base_url}/healthz").status_code == 200
        except httpx.HTTPError:
            return False


class WorkerProcess:
    """``upres worker`` (workers and housekeeping, no API) in its own process
    group, its log kept in ``output``."""

    def __init__(self, data_dir: Path, *, env: dict[str, str]) -> None:
        self.output: list[str] = []
        self._process = subprocess.Popen(
            [*UPRES, "worker", "--data-dir", str(data_dir)],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env=env,
            start_new_session=True,
        )
        threading.Thread(target=self._drain, daemon=True).start()

    def kill(self) -> None:
        """SIGKILL it and its worker processes: a crash, not a shutdown."""
        os.killpg(self._process.pid, signal.SIGKILL)
        self._process.wait(30)

    def stop(self) -> None:
        if self._process.poll() is None:
            os.killpg(self._process.pid, signal.SIGTERM)
            try:
                self._process.wait(30)
            except subprocess.TimeoutExpired:
                self.kill()

    def _drain(self) -> None:
        assert self._process.stdout is not None
        with self._process.stdout as lines:
            self.output.extend(lines)


class Client:
    """A client of the task API, as a user of the hosted API would write it."""

    def __init__(self, base_url: str, key: str) -> None:
        self._http = httpx.Client(
            base_url=base_url, headers={"Authorization": f"Bearer {key}"}, timeout=30
        )

    def close(self) -> None:
        self._http.close()

    def submit(self, url: str, *, factor: str = "2", callback_url: str | None = None) -> Any:
        body: dict[str, Any] = {
            "model": "topaz-video-upscale",
            "video_urls": [url],
            "model_params": {"upscale_factor": factor},
        }
        if callback_url is not None:
            body["callback_url"] = callback_url
        response = self._http.post("/v1/videos/generations", json=body)
        assert response.status_code == 200, response.text
        return response.json()

    def request(self, method: str, path: str, **options: Any) -> httpx.Response:
        """Any request with the key, answered as it is (no status check)."""
        return self._http.request(method, path, **options)

    def task(self, task_id: str) -> Any:
        response = self._http.get(f"/v1/tasks/{task_id}")
        assert response.status_code == 200, response.text
        return response.json()

    def cancel(self, task_id: str) -> httpx.Response:
        return self._http.post(f"/v1/tasks/{task_id}/cancel")

    def credits(self) -> float:
        return float(self._http.get("/v1/credits").json()["remaining_credits"])

    def wait_for(self, task_id: str, *statuses: str, timeout_s: float = 300) -> Any:
        seen: list[Any] = []

        def reached() -> bool:
            seen.append(self.task(task_id))
            return bool(seen[-1]["status"] in statuses)

        wait_for(reached, timeout_s=timeout_s, what=f"task {task_id} to reach {statuses}")
        return seen[-1]


def wait_for(condition: Callable[[], bool], *, timeout_s: float, what: str) -> None:
    end = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > end:
            raise AssertionError(f"timed out after {timeout_s:g} s waiting for {what}")
        time.sleep(0.25)
