"""Worker actors on a Ray cluster: Ray places long-lived workers on its nodes and GPUs.

The database stays the system of record and the queue. Each actor runs the
same claim-run-repeat loop as a worker process (its ``WorkerEntry``) against
``UPRES_DATABASE_URL``, so every node needs upres installed, a way to reach
the database and result storage the API can serve (S3). Ray only decides
where workers run and puts one on its own GPU; the reaper, the janitor and the
callbacks stay in the process that owns the pool.

ray is imported when a pool is built, so upres works without it.
"""

from __future__ import annotations

import importlib
import logging
import threading
from types import ModuleType
from typing import TYPE_CHECKING, Any

from upres.config import Settings
from upres.errors import ConfigError, ServiceUnavailable
from upres.jobs.pool import Restarter, WorkerEntry

if TYPE_CHECKING:
    from ray import ObjectRef
    from ray.actor import ActorHandle

log = logging.getLogger(__name__)


def import_ray() -> ModuleType:
    """The ray module. Raises ConfigError when ray is not installed."""
    try:
        return importlib.import_module("ray")
    except ImportError as exc:
        raise ConfigError(
            "UPRES_RAY_ADDRESS is set but ray is not installed: pip install 'upres[ray]'"
        ) from exc


class WorkerActor:
    """One upres worker in a Ray actor: ``run`` works until ``stop`` is called.

    The pool creates it with ``max_concurrency=2``, so ``stop`` runs beside ``run``.
    """

    def __init__(self, entry: WorkerEntry, settings_json: str, slot: int) -> None:
        self._entry = entry
        self._settings_json = settings_json
        self._slot = slot
        self._stop = threading.Event()

    def run(self) -> None:
        self._entry(self._settings_json, self._slot, self._stop)

    def stop(self) -> None:
        self._stop.set()


class RayPool:
    """``settings.worker_concurrency`` worker actors on the Ray cluster at
    ``settings.ray_address``; an actor that dies is replaced by a new one.

    Each actor asks Ray for ``settings.ray_gpus_per_worker`` GPUs (default 1
    when the cluster has any, else 0); Ray sets its CUDA_VISIBLE_DEVICES, so
    ``cuda`` inside a worker is its own GPU. A process already connected to
    Ray (a Ray job's driver, a test) keeps its connection; otherwise the pool
    connects in ``start`` and disconnects in ``stop``. Raises ConfigError from
    the constructor when ray is not installed.
    """

    def __init__(self, *, settings: Settings, entry: WorkerEntry, check_s: float = 1.0) -> None:
        self._ray = import_ray()
        self._settings = settings
        self._entry = entry
        self._settings_json = settings.model_dump_json()
        self._lock = threading.Lock()
        self._slots: dict[int, tuple[ActorHandle[WorkerActor], ObjectRef[None]]] = {}
        self._stopping = False
        self._connected = False
        self._actor_class: Any = None  # built by start(), once connected
        self._restarter = Restarter(
            ended=self._ended_slots, restart=self._spawn, what="worker actor", check_s=check_s
        )

    def start(self) -> None:
        """Connect to the cluster and start the actors.

        Raises ServiceUnavailable when the cluster cannot be reached.
        """
        self._connect()
        gpus = self._gpus_per_worker()
        log.info("%s GPU(s) per worker actor", gpus)
        self._actor_class = self._ray.remote(WorkerActor).options(
            num_gpus=gpus, max_concurrency=2, max_restarts=0
        )
        for slot in range(self._settings.worker_concurrency):
            self._spawn(slot)
        self._restarter.start()

    def alive(self) -> bool:
        """True while at least one actor's work loop has not ended (it runs,
        or waits for the cluster to place it)."""
        with self._lock:
            refs = [] if self._stopping else [ref for _, ref in self._slots.values()]
        if not refs:
            return False
        _, running = self._ray.wait(refs, num_returns=len(refs), timeout=0)
        return bool(running)

    def stop(self, *, grace_s: float = 5.0) -> None:
        """Ask actors to stop, wait ``grace_s``, kill the rest, disconnect.

        A task cut short this way is requeued by the reaper once its lease ends.
        """
        self._restarter.stop()
        with self._lock:
            self._stopping = True
            slots = list(self._slots.values())
        for actor, _ in slots:
            actor.stop.remote()
        refs = [ref for _, ref in slots]
        if refs:
            self._ray.wait(refs, num_returns=len(refs), timeout=grace_s)
        for actor, _ in slots:
            self._ray.kill(actor)
        if self._connected:
            self._ray.shutdown()

    def _connect(self) -> None:
        """Raises ServiceUnavailable when the cluster cannot be reached."""
        if self._ray.is_initialized():
            return
        address = self._settings.ray_address
        try:
            self._ray.init(address=address)
        except (ConnectionError, RuntimeError, ValueError) as exc:
            raise ServiceUnavailable(f"cannot connect to Ray at {address}: {exc}") from exc
        self._connected = True

    def _gpus_per_worker(self) -> float:
        if self._settings.ray_gpus_per_worker is not None:
            return self._settings.ray_gpus_per_worker
        return 1.0 if self._ray.cluster_resources().get("GPU", 0) > 0 else 0.0

    def _spawn(self, slot: int) -> None:
        with self._lock:
            previous = self._slots.get(slot)
        if previous is not None:
            # Its loop ended, but an actor whose loop raised still holds its GPU.
            self._ray.kill(previous[0])
        actor = self._actor_class.remote(self._entry, self._settings_json, slot)
        with self._lock:
            self._slots[slot] = (actor, actor.run.remote())
        log.info("worker actor %d requested", slot)

    def _ended_slots(self) -> list[int]:
        with self._lock:
            refs = {slot: ref for slot, (_, ref) in self._slots.items()}
        if not refs:
            return []
        ended, _ = self._ray.wait(list(refs.values()), num_returns=len(refs), timeout=0)
        slots = [slot for slot, ref in refs.items() if ref in ended]
        for slot in slots:
            log.warning("worker actor %d ended: %s", slot, self._why_ended(refs[slot]))
        return slots

    def _why_ended(self, ref: ObjectRef[None]) -> str:
        """The error that ended an actor's loop, on one line."""
        try:
            self._ray.get(ref)
        except Exception as exc:  # any error: it is what the operator needs to see
            first_line = next(iter(str(exc).splitlines()), "")
            return f"{type(exc).__name__}: {first_line}"
        return "its loop returned"
