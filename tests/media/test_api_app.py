"""The app built from settings alone: it opens the real services in its lifespan."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx

from tests.clips import make_clip
from tests.unit.api_harness import live_server
from upres.api.liveness import QueueWatch
from upres.config import Settings
from upres.db.task_store import SqlTaskStore
from upres.domain.tasks import API_MODEL, TaskStatus
from upres.services.keys import KeyService
from upres.storage import build_storage
from upres.wiring import api_services, app_from_settings, open_store


def test_app_builds_services_from_settings(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "data", public_base_url="http://files.test")
    with live_server(app_from_settings(settings, worker_alive=lambda: True)) as base_url:
        store = SqlTaskStore(settings.resolved_database_url)
        try:
            secret = KeyService(store).create(credits=100.0).secret
        finally:
            store.close()
        storage = build_storage(settings)
        storage.put(make_clip(tmp_path / "r.mp4", audio=False), "t/attempt-1.mp4")
        link = storage.url("t/attempt-1.mp4", expires_at=_tomorrow())
        headers = {"Authorization": f"Bearer {secret}"}
        with httpx.Client(base_url=base_url, headers=headers) as client:
            health = client.get("/healthz")
            refused = client.post(
                "/v1/videos/generations",
                json={"model": API_MODEL, "video_urls": ["http://127.0.0.1:9/clip.mp4"]},
            )
            download = client.get(link.removeprefix("http://files.test"))
    assert health.status_code == 200
    assert refused.status_code == 400
    assert refused.json()["error"]["param"] == "video_urls"
    assert download.status_code == 200
    assert download.content == (tmp_path / "r.mp4").read_bytes()


def test_the_api_uses_the_store_of_its_process(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "data")
    store = open_store(settings)
    try:
        services = api_services(settings, store)
        assert services.store is store
        created = KeyService(store).create(credits=5.0)
        assert services.keys.authenticate(created.secret) == created.key
    finally:
        store.close()


def _tomorrow() -> datetime:
    return datetime.now(UTC) + timedelta(days=1)


class Counts:
    def __init__(self) -> None:
        self.pending = 0
        self.processing = 0

    def count_by_status(self) -> dict[TaskStatus, int]:
        return {TaskStatus.PENDING: self.pending, TaskStatus.PROCESSING: self.processing}


def test_queue_watch_reports_a_stalled_queue_after_grace() -> None:
    counts, now = Counts(), [0.0]
    watch = QueueWatch(counts, grace_s=10.0, clock=lambda: now[0])
    assert watch()
    counts.pending = 2
    assert watch()
    now[0] = 9.0
    assert watch()
    now[0] = 11.0
    assert not watch()
    counts.processing = 1
    assert watch()
    counts.processing = 0
    now[0] = 15.0
    assert watch()
