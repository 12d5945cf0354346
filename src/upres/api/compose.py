"""Builds the API's ``Services`` from ``Settings`` with the parts ``upres.wiring``
(the composition root) makes: store, storage, address policy.

Used by ``create_app`` when it is not handed prebuilt services (``upres serve``).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import partial

from upres.api.deps import Services
from upres.api.metrics import StatusCounts
from upres.api.schemas import TaskRenderer
from upres.config import Settings
from upres.domain.tasks import TaskStatus
from upres.inputs.probe import probe
from upres.inputs.remote import RemoteProber
from upres.inputs.urlpolicy import UrlPolicy
from upres.services.keys import KeyService
from upres.services.tasks import TaskRecords, TaskService
from upres.services.uploads import UploadRecords, UploadService
from upres.storage import LocalStorage, ResultStorage, build_storage
from upres.wiring import address_policy, open_store


class QueueWatch:
    """Worker liveness seen from the queue, for an API process that runs no workers.

    Unhealthy once tasks have waited with none in progress for longer than
    ``grace_s``: a live worker would have claimed one by then.
    """

    def __init__(
        self,
        store: StatusCounts,
        *,
        grace_s: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._store = store
        self._grace_s = grace_s
        self._clock = clock
        self._stalled_since: float | None = None
        self._lock = threading.Lock()

    def __call__(self) -> bool:
        counts = self._store.count_by_status()
        pending = counts.get(TaskStatus.PENDING, 0)
        stalled = pending > 0 and counts.get(TaskStatus.PROCESSING, 0) == 0
        with self._lock:
            if not stalled:
                self._stalled_since = None
                return True
            now = self._clock()
            if self._stalled_since is None:
                self._stalled_since = now
            return now - self._stalled_since <= self._grace_s


def _task_service(
    settings: Settings, store: TaskRecords, renderer: TaskRenderer, uploads: UploadService
) -> TaskService:
    policy = address_policy(settings)
    return TaskService(
        store=store,
        prober=RemoteProber(policy, settings.probe_timeout_s, settings.media_limits),
        pricing=settings.pricing,
        urls=UrlPolicy(policy),
        callback_body=renderer,
        uploads=uploads,
    )


def _upload_service(
    settings: Settings, store: UploadRecords, storage: ResultStorage
) -> UploadService:
    return UploadService(
        records=store,
        storage=storage,
        probe=partial(probe, limits=settings.media_limits),
        scratch_dir=settings.data_dir / "work" / "uploads",
        max_bytes=settings.max_input_bytes,
        ttl_s=settings.result_ttl_s,
    )


@contextmanager
def services_from_settings(
    settings: Settings, *, worker_alive: Callable[[], bool] | None = None
) -> Iterator[Services]:
    """Migrates the database, then yields the services; closes the database after.

    ``worker_alive`` is the supervisor's check when this process runs the
    workers; without it, liveness is judged from the queue (``QueueWatch``).
    Raises ServiceUnavailable when the database or the data directory is unusable.
    """
    store = open_store(settings)
    try:
        storage = build_storage(settings)
        renderer = TaskRenderer(storage.url)
        uploads = _upload_service(settings, store, storage)
        yield Services(
            keys=KeyService(store),
            tasks=_task_service(settings, store, renderer, uploads),
            store=store,
            renderer=renderer,
            files=storage if isinstance(storage, LocalStorage) else None,
            worker_alive=worker_alive or QueueWatch(store, grace_s=4 * settings.lease_s),
            uploads=uploads,
            file_links=storage.url,
        )
    finally:
        store.close()
