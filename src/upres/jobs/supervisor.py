"""Worker processes on this machine: one per concurrent task, spawned,
restarted when they die, each on its own GPU when there are several.

Workers run in their own processes so a busy CPU or GPU never stalls the API,
and each keeps its models loaded between tasks. A process that dies takes its
task's lease with it; the reaper puts that task back in the queue.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import threading
from collections.abc import Sequence
from multiprocessing.connection import Connection
from multiprocessing.context import SpawnProcess

from upres.config import Settings
from upres.jobs.pool import Restarter, WorkerEntry
from upres.models.devices import (
    CUDA_VISIBLE_DEVICES,
    gpu_for_slot,
    on_vulkan_device,
    visible_devices,
)

log = logging.getLogger(__name__)


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


def _worker_main(
    entry: WorkerEntry, settings_json: str, slot: int, stop: Connection, gpu: int | None
) -> None:
    """Entry point of a worker process: take ``gpu`` (when given), then work until stopped."""
    if gpu is not None:
        # This is the process's entry point, so its environment is its own to
        # set. CUDA reads the variable once, when torch first touches a GPU,
        # which happens later, in the worker: from then on "cuda" means this
        # GPU, and nothing in the engine needs to know about the others.
        os.environ[CUDA_VISIBLE_DEVICES] = visible_devices(
            gpu, os.environ.get(CUDA_VISIBLE_DEVICES)
        )
    entry(settings_json, slot, PipeStop(stop))


class Supervisor:
    """Keeps ``processes`` worker processes, each running ``entry``, until ``stop``. Slot k sees
    only GPU ``gpu_for_slot(k, gpus)``; with no ``gpus``, what this process sees.
    With ``vulkan``, ``gpus`` are Vulkan device indices and slot k runs on its
    own (there is no Vulkan counterpart of CUDA_VISIBLE_DEVICES to narrow)."""

    def __init__(
        self,
        *,
        settings: Settings,
        entry: WorkerEntry,
        processes: int,
        gpus: Sequence[int] = (),
        vulkan: bool = False,
        check_s: float = 1.0,
    ) -> None:
        self._settings = settings
        self._entry = entry
        self._vulkan = vulkan
        self._settings_json = settings.model_dump_json()
        self._count = processes
        self._gpus = tuple(gpus)
        self._context = multiprocessing.get_context("spawn")
        self._stop_reader, self._stop_writer = self._context.Pipe(duplex=False)
        self._lock = threading.Lock()
        self._slots: dict[int, SpawnProcess] = {}
        self._restarter = Restarter(
            ended=self._dead_slots, restart=self._spawn, what="worker process", check_s=check_s
        )

    def start(self) -> None:
        for slot in range(self._count):
            self._spawn(slot)
        self._restarter.start()

    def alive(self) -> bool:
        """True while at least one worker process runs."""
        with self._lock:
            return any(process.is_alive() for process in self._slots.values())

    def stop(self, *, grace_s: float = 5.0) -> None:
        """Ask workers to stop, wait ``grace_s``, then terminate the rest.

        A task cut short this way is requeued by the reaper once its lease ends.
        """
        self._restarter.stop()
        self._stop_writer.send_bytes(b"stop")
        with self._lock:
            processes = list(self._slots.values())
        for process in processes:
            process.join(grace_s)
            if process.is_alive():
                process.terminate()
                process.join(grace_s)

    def _spawn(self, slot: int) -> None:
        gpu = gpu_for_slot(slot, self._gpus)
        settings_json, cuda_gpu = self._settings_json, gpu
        if self._vulkan and gpu is not None:
            settings_json = on_vulkan_device(self._settings, gpu).model_dump_json()
            cuda_gpu = None
        process = self._context.Process(
            target=_worker_main,
            args=(self._entry, settings_json, slot, self._stop_reader, cuda_gpu),
            name=f"upres-worker-{slot}",
            daemon=True,
        )
        process.start()
        with self._lock:
            self._slots[slot] = process
        shown = "unchanged" if gpu is None else f"{'Vulkan ' if self._vulkan else ''}{gpu}"
        log.info("worker process %d started (pid %s, GPU %s)", slot, process.pid, shown)

    def _dead_slots(self) -> list[int]:
        with self._lock:
            return [slot for slot, process in self._slots.items() if not process.is_alive()]
