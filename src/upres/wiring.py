"""The composition root: builds upres's parts from ``Settings``.

Entry points (the CLI, worker processes, the API processes) call these;
nothing else constructs stores, storage or policies, and nothing here runs at
import.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import partial

from fastapi import FastAPI

from upres.api.app import create_app
from upres.api.deps import Services
from upres.api.liveness import QueueWatch
from upres.api.schemas import TaskRenderer
from upres.callbacks.webhooks import CallbackDispatcher, CallbackSender
from upres.config import Settings
from upres.database import TaskStore
from upres.db.migrate import migrate
from upres.db.session import is_sqlite_url
from upres.db.task_store import SqlTaskStore
from upres.inputs.netpolicy import AddressPolicy
from upres.inputs.probe import probe
from upres.inputs.remote import PROBE_MAX_BYTES, RemoteProber
from upres.inputs.urlpolicy import UrlPolicy
from upres.jobs.reaper import Reaper
from upres.services.keys import KeyService
from upres.services.looks import check_network_settings
from upres.services.tasks import TaskRecords, TaskService
from upres.services.uploads import UploadRecords, UploadService
from upres.storage import LocalStorage, ResultStorage, build_storage
from upres.storage.janitor import Janitor


def configure_logging(level: int = logging.INFO) -> None:
    """One log format for every upres process."""
    logging.basicConfig(
        level=level, format="%(asctime)s %(levelname)s %(processName)s %(name)s: %(message)s"
    )


def open_store(settings: Settings) -> TaskStore:
    """Create the data directory, migrate the database, open the store."""
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    migrate(settings.resolved_database_url)
    return SqlTaskStore(settings.resolved_database_url, max_attempts=settings.max_attempts)


def address_policy(settings: Settings) -> AddressPolicy:
    return AddressPolicy(settings.allow_private_networks)


def _task_service(
    settings: Settings, store: TaskRecords, renderer: TaskRenderer, uploads: UploadService
) -> TaskService:
    """Raises ConfigError when UPRES_MODEL or UPRES_NETWORK_PRICES names no network."""
    check_network_settings(model=settings.model, priced=settings.network_prices)
    policy = address_policy(settings)
    return TaskService(
        store=store,
        # A probe reads no more than an input may be: what it downloads whole is
        # what the worker reads (``UploadService.keep_input``).
        prober=RemoteProber(
            policy,
            settings.probe_timeout_s,
            settings.media_limits,
            max_bytes=min(PROBE_MAX_BYTES, settings.max_input_bytes),
        ),
        pricing=settings.pricing,
        urls=UrlPolicy(policy),
        callback_body=renderer,
        uploads=uploads,
        default_model=settings.model,
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


def api_services(
    settings: Settings, store: TaskStore, *, worker_alive: Callable[[], bool] | None = None
) -> Services:
    """The API's services on ``store``, the process's one store (its owner closes it).

    ``worker_alive`` is the supervisor's check when this process runs the
    workers; without it, liveness is judged from the queue (``QueueWatch``).
    Raises ServiceUnavailable when the storage is unusable, ConfigError as
    ``_task_service``.
    """
    storage = build_storage(settings)
    renderer = TaskRenderer(storage.url)
    uploads = _upload_service(settings, store, storage)
    return Services(
        keys=KeyService(store),
        tasks=_task_service(settings, store, renderer, uploads),
        store=store,
        renderer=renderer,
        files=storage if isinstance(storage, LocalStorage) else None,
        worker_alive=worker_alive or QueueWatch(store, grace_s=4 * settings.lease_s),
        uploads=uploads,
        file_links=storage.url,
        inline_reads=is_sqlite_url(settings.resolved_database_url),
    )


@contextmanager
def services_from_settings(
    settings: Settings, *, worker_alive: Callable[[], bool] | None = None
) -> Iterator[Services]:
    """Opens this process's store (migrating the database), yields the API's
    services on it (``api_services``), closes the store after.

    Raises ServiceUnavailable when the database or the data directory is unusable.
    """
    store = open_store(settings)
    try:
        yield api_services(settings, store, worker_alive=worker_alive)
    finally:
        store.close()


def app_from_settings(
    settings: Settings, *, worker_alive: Callable[[], bool] | None = None
) -> FastAPI:
    """The API app, building its services from ``settings`` when it starts
    (``services_from_settings``) and closing them when it stops."""
    return create_app(
        settings, services=partial(services_from_settings, settings, worker_alive=worker_alive)
    )


class Housekeeping:
    """The periodic chores of a deployment: reap expired leases, deliver
    callbacks, delete expired results. Run by exactly the processes that run
    workers (``upres serve``, ``upres worker``)."""

    def __init__(self, *, settings: Settings, store: TaskStore) -> None:
        storage = build_storage(settings)
        policy = address_policy(settings)
        self._reaper = Reaper(
            store, callback_body=TaskRenderer(storage.url), max_attempts=settings.max_attempts
        )
        self._janitor = Janitor(store, storage, uploads=store, chunks=store)
        self._callbacks = CallbackDispatcher(
            CallbackSender(
                store,
                policy,
                ca_file=settings.callback_ca_file,
                timeout_s=settings.callback_timeout_s,
                retry_delays_s=settings.callback_retry_delays_s,
            )
        )
        self._stop = threading.Event()
        self._threads = [
            threading.Thread(
                target=self._reaper.run_forever,
                args=(self._stop,),
                kwargs={"interval_s": settings.reaper_interval_s},
                name="reaper",
                daemon=True,
            ),
            threading.Thread(
                target=self._janitor.run_forever,
                args=(self._stop,),
                kwargs={"interval_s": settings.janitor_interval_s},
                name="janitor",
                daemon=True,
            ),
        ]

    def start(self) -> None:
        self._callbacks.start()
        for thread in self._threads:
            thread.start()

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join()
        self._callbacks.stop()
