"""Worker processes: one per concurrent task, spawned, restarted when they die.

Workers run in their own processes so a busy CPU or GPU never stalls the API,
and each keeps its models loaded between tasks. A process that dies takes its
task's lease with it; the reaper puts that task back in the queue.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import socket
import threading
import uuid
from multiprocessing.connection import Connection
from multiprocessing.context import SpawnProcess

from upres.config import Settings

log = logging.getLogger(__name__)


def new_worker_id(slot: int) -> str:
    """Unique per process start, readable in the task table and the log."""
    return f"{socket.gethostname()}-{os.getpid()}-{slot}-{uuid.uuid4().hex[:6]}"


class PipeStop:
    """A worker process's stop signal: set once the supervisor writes to the
    pipe or goes away (end of file). Nobody reads the pipe, so every worker
    sees the one write.

    Not a multiprocessing Event: its ``set`` waits for every process waiting
    on it to wake, forever if one of them was killed while waiting.
    """

    def __init__(self, reader: Connection) -> None:
        self._reader = reader

    def is_set(self) -> bool:
        return self._reader.poll(0)

    def wait(self, timeout: float | None = None) -> bool:
        return self._reader.poll(timeout)


def _worker_main(settings_json: str, slot: int, stop: Connection) -> None:
    """Entry point of a worker process: build everything, then work until stopped."""
    from upres.wiring import configure_logging, worker_from_settings  # noqa: PLC0415

    settings = Settings.model_validate_json(settings_json)
    configure_logging()
    with worker_from_settings(settings, worker_id=new_worker_id(slot)) as worker:
        worker.run_until(PipeStop(stop))


class Supervisor:
    """Keeps ``processes`` worker processes running until ``stop``."""

    def __init__(self, *, settings: Settings, processes: int, check_s: float = 1.0) -> None:
        self._settings_json = settings.model_dump_json()
        self._count = processes
        self._check_s = check_s
        self._context = multiprocessing.get_context("spawn")
        self._stop_reader, self._stop_writer = self._context.Pipe(duplex=False)
        self._halt = threading.Event()
        self._lock = threading.Lock()
        self._slots: dict[int, SpawnProcess] = {}
        self._watcher = threading.Thread(target=self._watch, name="supervisor", daemon=True)

    def start(self) -> None:
        for slot in range(self._count):
            self._spawn(slot)
        self._watcher.start()

    def alive(self) -> bool:
        """True while at least one worker process runs."""
        with self._lock:
            return any(process.is_alive() for process in self._slots.values())

    def stop(self, *, grace_s: float = 5.0) -> None:
        """Ask workers to stop, wait ``grace_s``, then terminate the rest.

        A task cut short this way is requeued by the reaper once its lease ends.
        """
        self._halt.set()
        self._stop_writer.send_bytes(b"stop")
        if self._watcher.is_alive():
            self._watcher.join()
        with self._lock:
            processes = list(self._slots.values())
        for process in processes:
            process.join(grace_s)
            if process.is_alive():
                process.terminate()
                process.join(grace_s)

    def _spawn(self, slot: int) -> None:
        process = self._context.Process(
            target=_worker_main,
            args=(self._settings_json, slot, self._stop_reader),
            name=f"upres-worker-{slot}",
            daemon=True,
        )
        process.start()
        with self._lock:
            self._slots[slot] = process
        log.info("worker process %d started (pid %s)", slot, process.pid)

    def _watch(self) -> None:
        while not self._halt.wait(self._check_s):
            with self._lock:
                dead = [slot for slot, p in self._slots.items() if not p.is_alive()]
            for slot in dead:
                log.warning("worker process %d died; starting a new one", slot)
                self._spawn(slot)
