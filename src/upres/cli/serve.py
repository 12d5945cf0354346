"""``upres serve`` (API + workers + housekeeping) and ``upres worker`` (no API).

``serve`` is the one-machine deployment: SQLite and result files under
``--data-dir``, worker processes beside the API process. ``worker`` runs the
same workers and chores against a shared database, for more machines. With
UPRES_RAY_ADDRESS either runs its workers as actors on a Ray cluster instead.
"""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import typer
import uvicorn

from upres.api.app import create_app
from upres.cli._exits import errors_end_the_command
from upres.cli._settings import setting_default, settings_or_exit
from upres.config import Settings
from upres.database import TaskStore
from upres.jobs.pool import WorkerPool
from upres.jobs.ray_pool import RayPool
from upres.jobs.supervisor import Supervisor
from upres.models.devices import Device, machine_gpu_slots, settings_device
from upres.services.keys import KeyRecords, KeyService
from upres.wiring import Housekeeping, api_services, configure_logging, open_store
from upres.worker_entry import run_worker

DataDir = Annotated[
    Path | None,
    typer.Option(
        "--data-dir",
        help="Folder for the database, the results and scratch files "
        f"({setting_default('data_dir')}).",
    ),
]
Workers = Annotated[
    int | None,
    typer.Option(
        "--workers",
        help="How many tasks run at once, one worker process each; 0 runs none here "
        f"({setting_default('worker_concurrency')}).",
    ),
]
RayAddress = Annotated[
    str | None,
    typer.Option(
        "--ray-address",
        help="Run the workers as actors on this Ray cluster: auto, or ray://host:port "
        f"({setting_default('ray_address', 'workers on this machine')}).",
    ),
]


def _first_key(store: KeyRecords, settings: Settings) -> str | None:
    """On first start (no key at all), a key with the starting credits."""
    keys = KeyService(store)
    if keys.list():
        return None
    return keys.create(credits=settings.initial_credits).secret


def _pool(settings: Settings) -> WorkerPool:
    """Actors on a Ray cluster when UPRES_RAY_ADDRESS is set, else processes here.

    Raises ConfigError when ray is asked for but not installed, or UPRES_GPUS
    names a GPU that is not there; ModelError when the device is missing.
    """
    if settings.ray_address is not None:
        return RayPool(settings=settings, entry=run_worker)
    slots = machine_gpu_slots(settings, _worker_device(settings))
    processes = settings.worker_concurrency
    return Supervisor(
        settings=settings,
        entry=run_worker,
        processes=processes,
        gpus=slots.gpus,
        vulkan=slots.vulkan,
    )


def _worker_device(settings: Settings) -> Device:
    """The device the workers run on, decided before any of them starts: the CPU
    when told so or when there are no workers (nothing to resolve).

    Raises ModelError when the device setting names a device this machine lacks.
    """
    if settings.device == "cpu" or settings.worker_concurrency == 0:
        return Device(kind="cpu")
    return settings_device(settings)


@contextmanager
def _workers(settings: Settings) -> Iterator[tuple[TaskStore, WorkerPool]]:
    """Store, housekeeping and workers, stopped in reverse order."""
    pool = _pool(settings)
    store = open_store(settings)
    chores = Housekeeping(settings=settings, store=store)
    chores.start()
    try:
        pool.start()
        yield store, pool
    finally:
        pool.stop()
        chores.stop()
        store.close()


def serve(
    host: Annotated[
        str | None,
        typer.Option(
            help=f"Address to listen on; 0.0.0.0 for every network ({setting_default('host')})."
        ),
    ] = None,
    port: Annotated[
        int | None, typer.Option(help=f"Port to listen on ({setting_default('port')}).")
    ] = None,
    data_dir: DataDir = None,
    workers: Workers = None,
    ray_address: RayAddress = None,
) -> None:
    """Start the API, the workers and the housekeeping on this machine (``_SERVE_HELP``)."""
    settings = settings_or_exit(
        host=host,
        port=port,
        data_dir=data_dir,
        worker_concurrency=workers,
        ray_address=ray_address,
    )
    configure_logging()
    with errors_end_the_command(), _workers(settings) as (store, pool):
        secret = _first_key(store, settings)
        if settings.api_workers > 1:
            _announce(settings, secret)
            _serve_processes(settings)
            return
        # With no workers of its own (--workers 0: an API in front of `upres worker`
        # machines) this process judges worker liveness from the queue instead.
        alive = pool.alive if settings.worker_concurrency > 0 else None
        # The API shares this process's store with the housekeeping: one store per process.
        services = api_services(settings, store, worker_alive=alive)
        _announce(settings, secret)
        uvicorn.run(
            create_app(settings, services=services),
            host=settings.host,
            port=settings.port,
            log_level="info",
            access_log=settings.access_log,
        )


def _serve_processes(settings: Settings) -> None:
    """The API in ``settings.api_workers`` uvicorn processes, each building its
    app from the environment (``upres.cli.asgi``): the options given on the
    command line are put there first."""
    os.environ.update(
        UPRES_HOST=settings.host,
        UPRES_PORT=str(settings.port),
        UPRES_DATA_DIR=str(settings.data_dir),
    )
    uvicorn.run(
        "upres.cli.asgi:app",
        factory=True,
        workers=settings.api_workers,
        host=settings.host,
        port=settings.port,
        log_level="info",
        access_log=settings.access_log,
    )


def worker(
    data_dir: DataDir = None, workers: Workers = None, ray_address: RayAddress = None
) -> None:
    """Run workers and housekeeping only, against UPRES_DATABASE_URL (``_WORKER_HELP``)."""
    settings = settings_or_exit(
        data_dir=data_dir, worker_concurrency=workers, ray_address=ray_address
    )
    configure_logging()
    stop = threading.Event()
    with errors_end_the_command(), _workers(settings):
        # Only now: connecting to Ray replaces this process's SIGTERM handler.
        signal.signal(signal.SIGTERM, lambda *_: stop.set())
        signal.signal(signal.SIGINT, lambda *_: stop.set())
        typer.echo(f"upres worker: {_describe_workers(settings)}; Ctrl-C stops")
        stop.wait()


def _describe_workers(settings: Settings) -> str:
    count = settings.worker_concurrency
    if settings.ray_address is not None:
        return f"{count} Ray actor(s) at {settings.ray_address}"
    return f"{count} process(es)"


def _announce(settings: Settings, secret: str | None) -> None:
    base = settings.resolved_public_base_url
    typer.echo(f"upres is serving on {base}  (docs: {base}/docs, data: {settings.data_dir})")
    if secret is not None:
        typer.echo(f"first start: API key with {settings.initial_credits:g} credits:")
        typer.echo(secret)


_SERVE_HELP = (
    "Run the HTTP API, its web page, the workers and the housekeeping on this machine.\n\n"
    "On the first start (no API key yet) it prints a key holding UPRES_INITIAL_CREDITS "
    "credits. With --workers 0 it runs the API only, in front of upres worker machines "
    "that share its database. Ctrl-C stops it."
)
_WORKER_HELP = (
    "Run workers and housekeeping only, without the API, to add a machine to a server.\n\n"
    "The workers take their tasks from the database UPRES_DATABASE_URL names, the one the "
    "server uses. Ctrl-C stops them."
)


def register(app: typer.Typer) -> None:
    """Add the ``serve`` and ``worker`` commands to ``app``."""
    app.command("serve", help=_SERVE_HELP)(serve)
    app.command("worker", help=_WORKER_HELP)(worker)
