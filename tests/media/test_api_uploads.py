"""POST /v1/uploads and its use in submissions and estimates, against the live API:
real clips, real probing, real SQLite and local storage."""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest

from tests.clips import make_clip, write_text_file
from tests.stores import FakeClock
from tests.unit.api_harness import Api, running_api
from upres.config import Settings
from upres.domain.storage_keys import upload_key
from upres.storage.janitor import Janitor

GENERATE = "/v1/videos/generations"
ESTIMATE = "/v1/videos/generations/estimate"


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    # 2.5 s: bills 3 started seconds.
    return make_clip(tmp_path_factory.mktemp("clips") / "clip.mp4", frames=30, fps=12)


@pytest.fixture
def api(tmp_path: Path) -> Iterator[Api]:
    with running_api(tmp_path) as api:
        yield api


def _upload(http: httpx.Client, path: Path, **params: str) -> httpx.Response:
    return http.post("/v1/uploads", content=path.read_bytes(), params=params)


def _body(url: str, factor: str = "2") -> dict[str, Any]:
    return {
        "model": "topaz-video-upscale",
        "video_urls": [url],
        "model_params": {"upscale_factor": factor},
    }


def _stored_files(api: Api) -> list[Path]:
    return sorted(p for p in api.storage.root.rglob("*") if p.is_file())


def _local_link(api: Api, link: str) -> str:
    """A signed link of the harness's storage, on the running server."""
    return api.base_url + link.split("upres.test", 1)[1]


def test_upload_is_probed_stored_and_readable_by_its_key(api: Api, clip: Path) -> None:
    with api.client() as http:
        response = _upload(http, clip, filename="holiday/clip.mp4")
        assert response.status_code == 200, response.text
        body = response.json()
        again = http.get(f"/v1/uploads/{body['id']}").json()
        download = http.get(_local_link(api, body["download_url"]))

    assert body["url"] == f"upres-upload://{body['id']}"
    assert body["filename"] == "clip.mp4"
    assert (body["bytes"], body["width"], body["height"]) == (clip.stat().st_size, 64, 48)
    assert body["video_duration"] == 3
    assert again == body
    assert download.content == clip.read_bytes()


def test_an_upload_is_submitted_and_estimated_at_the_same_price(api: Api, clip: Path) -> None:
    with api.client() as http:
        url = _upload(http, clip).json()["url"]
        before = http.get("/v1/credits").json()["remaining_credits"]
        estimate = http.post(ESTIMATE, json=_body(url, "4"))
        after_estimate = http.get("/v1/credits").json()["remaining_credits"]
        task = http.post(GENERATE, json=_body(url, "4")).json()

    assert estimate.status_code == 200, estimate.text
    assert estimate.json()["credits"] == task["usage"]["credits_reserved"] == 3 * 28
    assert estimate.json()["video_duration"] == task["task_info"]["video_duration"] == 3
    assert estimate.json()["estimated_time"] == task["task_info"]["estimated_time"]
    assert after_estimate == before
    assert api.store.get_task(task["id"]).input_url == url


def test_the_task_list_shows_newest_first_with_the_upload_source(api: Api, clip: Path) -> None:
    with api.client() as http:
        url = _upload(http, clip).json()["url"]
        first = http.post(GENERATE, json=_body(url)).json()
        second = http.post(GENERATE, json=_body("https://example.com/a.mp4", "1")).json()
        listed = http.get("/v1/tasks").json()["data"]
        source = http.get(_local_link(api, listed[1]["source_url"]))

    assert [item["id"] for item in listed] == [second["id"], first["id"]]
    assert [item["upscale_factor"] for item in listed] == ["1", "2"]
    assert listed[0]["source_url"] == "https://example.com/a.mp4"
    assert source.content == clip.read_bytes()


def test_a_non_video_is_refused_and_nothing_is_kept(api: Api, tmp_path: Path) -> None:
    text = write_text_file(tmp_path / "notes.mp4")
    with api.client() as http:
        response = _upload(http, text)

    assert response.status_code == 400
    assert response.json()["error"]["code"] == "video_probe_failed"
    assert _stored_files(api) == []
    assert list((api.storage.root.parent / "upload-scratch").iterdir()) == []


def test_another_key_can_neither_read_nor_use_an_upload(api: Api, clip: Path) -> None:
    stranger = api.keys.create(credits=1000.0)
    with api.client() as http:
        upload = _upload(http, clip).json()
    with api.client(stranger.secret) as http:
        read = http.get(f"/v1/uploads/{upload['id']}")
        submit = http.post(GENERATE, json=_body(upload["url"]))
        estimate = http.post(ESTIMATE, json=_body(upload["url"]))
        listed = http.get("/v1/tasks").json()["data"]

    assert read.status_code == 404
    assert read.json()["error"]["code"] == "resource_not_found"
    for refused in (submit, estimate):
        assert refused.status_code == 400
        assert refused.json()["error"]["code"] == "video_probe_failed"
    assert listed == []


def test_a_malformed_upload_url_is_refused(api: Api) -> None:
    with api.client() as http:
        response = http.post(GENERATE, json=_body("upres-upload://../../etc/passwd"))
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "video_probe_failed"


def test_uploads_need_a_key(api: Api, clip: Path) -> None:
    with api.client("") as http:
        response = _upload(http, clip)
    assert response.status_code == 401


def test_the_size_limit_refuses_declared_and_streamed_bodies(tmp_path: Path, clip: Path) -> None:
    limit = clip.stat().st_size - 1

    def chunks() -> Iterator[bytes]:
        data = clip.read_bytes()
        for start in range(0, len(data), 1000):
            yield data[start : start + 1000]

    with running_api(tmp_path, upload_settings=Settings(max_input_bytes=limit)) as api:
        with api.client() as http:
            declared = _upload(http, clip)
            streamed = http.post("/v1/uploads", content=chunks())
        assert _stored_files(api) == []

    for response in (declared, streamed):
        assert response.status_code == 413
        assert response.json()["error"]["code"] == "request_too_large"
        assert str(limit) in response.json()["error"]["message"]


def test_uploads_expire_and_the_janitor_deletes_them(tmp_path: Path, clip: Path) -> None:
    clock = FakeClock(datetime.now(UTC))
    settings = Settings(result_ttl_s=3600)
    with running_api(tmp_path, upload_settings=settings, upload_clock=clock) as api:
        with api.client() as http:
            upload = _upload(http, clip).json()
            clock.advance(3601)
            read = http.get(f"/v1/uploads/{upload['id']}")
            submit = http.post(GENERATE, json=_body(upload["url"]))
        removed = Janitor(api.store, api.storage, clock, uploads=api.store).run_once()

        assert not api.storage.exists(upload_key(upload["id"]))
        assert api.store.expired_uploads(now=clock()) == []
    assert read.status_code == 404
    assert submit.status_code == 400
    assert "expire" in submit.json()["error"]["message"]
    assert removed == 1


class _PeakRss:
    """Samples this process's resident memory in a thread until stopped."""

    def __init__(self) -> None:
        self._process = psutil.Process(os.getpid())
        self.peak = self._process.memory_info().rss
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def __enter__(self) -> _PeakRss:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _sample(self) -> None:
        while not self._stop.wait(0.01):
            self.peak = max(self.peak, self._process.memory_info().rss)


@pytest.mark.slow
def test_a_large_upload_streams_with_flat_memory(api: Api) -> None:
    """128 MiB through the server (in this process) grows memory by far less than
    the body: it is spooled to disk chunk by chunk, and over the 1 MiB limit of
    other request bodies."""
    size, chunk = 128 * 1024**2, b"\0" * (1024**2)

    def body() -> Iterator[bytes]:
        for _ in range(size // len(chunk)):
            yield chunk

    with api.client() as http, _PeakRss() as memory:
        baseline = psutil.Process(os.getpid()).memory_info().rss
        response = http.post(
            "/v1/uploads", content=body(), headers={"Content-Length": str(size)}, timeout=120
        )

    # Zeros are not a video: the whole body was received, then refused by the probe.
    assert response.json()["error"]["code"] == "video_probe_failed"
    assert memory.peak - baseline < 32 * 1024**2
