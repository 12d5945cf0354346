"""The API under test: real services on a real SQLite file, served by a real
uvicorn on 127.0.0.1 in a thread, called with a real httpx client."""

from __future__ import annotations

import ipaddress
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import httpx
import uvicorn
from fastapi import FastAPI

from tests.clips import probed_info
from upres.api.app import create_app
from upres.api.deps import Services
from upres.api.schemas import TaskRenderer
from upres.clock import Clock, Ticks, utc_now
from upres.config import Settings
from upres.db.migrate import migrate
from upres.db.task_store import SqlTaskStore
from upres.domain.accounts import CreatedKey
from upres.domain.media import VideoInfo
from upres.errors import PROBE_FAILED_MESSAGE, FetchError
from upres.inputs.netpolicy import AddressPolicy, IPAddress
from upres.inputs.probe import probe
from upres.inputs.urlpolicy import UrlPolicy
from upres.services.keys import KeyService
from upres.services.tasks import TaskService
from upres.services.uploads import UploadService
from upres.storage.local import LocalStorage

VIDEO_SECONDS = 8.2
INTERNAL_HOST = "internal.test"
RESULTS_BASE = "http://upres.test"


class FixedProber:
    """Every URL is an 8.2 s 64x48 video, except hosts named ``unreachable``."""

    def probe_url(self, url: str, *, whole_body: Path | None = None) -> VideoInfo:
        if "unreachable" in url:
            raise FetchError(PROBE_FAILED_MESSAGE)
        return probed_info(
            width=64, height=48, duration_s=VIDEO_SECONDS, frames=98, fps=12, has_audio=False
        )


def fake_dns(host: str, port: int) -> list[IPAddress]:
    """No real DNS in tests: one internal name, every other name is public."""
    address = "10.0.0.7" if host == INTERNAL_HOST else "93.184.216.34"
    return [ipaddress.ip_address(address)]


@dataclass(frozen=True, kw_only=True)
class Api:
    """A running app and what the tests need to arrange and check its state."""

    base_url: str
    store: SqlTaskStore
    storage: LocalStorage
    keys: KeyService
    services: Services
    owner: CreatedKey

    def client(self, secret: str | None = None) -> httpx.Client:
        token = self.owner.secret if secret is None else secret
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return httpx.Client(base_url=self.base_url, headers=headers, timeout=10)


def upload_service(
    store: SqlTaskStore,
    storage: LocalStorage,
    *,
    settings: Settings | None = None,
    clock: Clock = utc_now,
) -> UploadService:
    """Real uploads: probed with the engine's prober, kept in ``storage``."""
    settings = settings or Settings()
    return UploadService(
        clock=clock,
        records=store,
        storage=storage,
        probe=partial(probe, limits=settings.media_limits),
        scratch_dir=storage.root.parent / "upload-scratch",
        max_bytes=settings.max_input_bytes,
        ttl_s=settings.result_ttl_s,
    )


def real_services(
    store: SqlTaskStore, storage: LocalStorage, uploads: UploadService | None = None
) -> Services:
    renderer = TaskRenderer(storage.url)
    uploads = uploads or upload_service(store, storage)
    tasks = TaskService(
        store=store,
        prober=FixedProber(),
        pricing=Settings().pricing,
        urls=UrlPolicy(AddressPolicy(resolver=fake_dns)),
        callback_body=renderer,
        uploads=uploads,
    )
    return Services(
        keys=KeyService(store),
        tasks=tasks,
        store=store,
        renderer=renderer,
        files=storage,
        worker_alive=lambda: True,
        uploads=uploads,
        file_links=storage.url,
        inline_reads=True,
    )


@contextmanager
def running_api(
    tmp_path: Path,
    *,
    adjust: Callable[[Services], Services] = lambda services: services,
    upload_settings: Settings | None = None,
    upload_clock: Clock = utc_now,
    ticks: Ticks = time.monotonic,
    **overrides: Any,
) -> Iterator[Api]:
    """Migrated SQLite store, a funded key, and the app serving them; uploads
    follow ``upload_settings`` (limits, lifetime) and ``upload_clock``, cached keys
    ``ticks``;
    ``overrides`` of the app settings (a rate limit of 1000 a minute unless given)."""
    url = f"sqlite:///{tmp_path / 'api.db'}"
    migrate(url)
    store = SqlTaskStore(url)
    keys = KeyService(store)
    storage = LocalStorage(tmp_path / "results", base_url=RESULTS_BASE, secret=b"s" * 32)
    uploads = upload_service(store, storage, settings=upload_settings, clock=upload_clock)
    services = adjust(real_services(store, storage, uploads))
    settings = Settings(**{"data_dir": tmp_path, "rate_limit_per_minute": 1000, **overrides})
    try:
        with live_server(create_app(settings, services=services, ticks=ticks)) as base_url:
            yield Api(
                base_url=base_url,
                store=store,
                storage=storage,
                keys=keys,
                services=services,
                owner=keys.create(credits=10_000.0),
            )
    finally:
        store.close()


@contextmanager
def live_server(app: FastAPI) -> Iterator[str]:
    """Serve ``app`` (lifespan included) on a free port; yields its base URL."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(app, log_level="warning", lifespan="on", ws="none", http="h11")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()
