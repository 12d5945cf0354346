"""A completed task's result link, downloaded whole and by byte range; expired links."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from tests.clips import make_clip
from tests.unit.api_harness import RESULTS_BASE, Api, running_api
from upres.domain.storage_keys import result_key
from upres.domain.tasks import API_MODEL

VIDEO = "https://videos.example.com/clip.mp4"


@pytest.fixture
def api(tmp_path: Path) -> Iterator[Api]:
    with running_api(tmp_path) as running:
        yield running


def complete_one(api: Api, result: Path) -> tuple[str, dict[str, object]]:
    """Submit a task, let a pretend worker finish it with ``result``; the task's GET body."""
    with api.client() as client:
        task_id = client.post(
            "/v1/videos/generations", json={"model": API_MODEL, "video_urls": [VIDEO]}
        ).json()["id"]
    claim = api.store.claim(worker_id="w1", lease_s=30)
    assert claim is not None
    key = result_key(task_id, 1)
    api.storage.put(result, key)
    api.store.complete(
        claim,
        result_key=key,
        result_expires_at=datetime.now(UTC) + timedelta(hours=24),
        actual_duration_s=8.2,
        credits_charged=144.0,
        callback_body=api.services.renderer,
    )
    with api.client() as client:
        response = client.get(f"/v1/tasks/{task_id}")
    assert response.status_code == 200
    return task_id, response.json()


def local_path(api: Api, link: str) -> str:
    assert link.startswith(f"{RESULTS_BASE}/v1/files/")
    return link.removeprefix(RESULTS_BASE)


def test_completed_task_links_a_downloadable_result(api: Api, tmp_path: Path) -> None:
    result = make_clip(tmp_path / "result.mp4", audio=False)
    _, task = complete_one(api, result)
    assert task["status"] == "completed"
    assert task["progress"] == 100
    (link,) = task["results"]  # type: ignore[misc]
    with httpx.Client(base_url=api.base_url) as client:
        whole = client.get(local_path(api, link))
    assert whole.status_code == 200
    assert whole.headers["content-type"] == "video/mp4"
    assert whole.headers["accept-ranges"] == "bytes"
    assert whole.content == result.read_bytes()


def test_range_request_answers_206_with_content_range(api: Api, tmp_path: Path) -> None:
    result = make_clip(tmp_path / "result.mp4", audio=False)
    size = result.stat().st_size
    _, task = complete_one(api, result)
    path = local_path(api, task["results"][0])  # type: ignore[index]
    with httpx.Client(base_url=api.base_url) as client:
        head = client.get(path, headers={"Range": "bytes=0-99"})
        tail = client.get(path, headers={"Range": "bytes=-10"})
        beyond = client.get(path, headers={"Range": f"bytes={size + 10}-"})
    assert head.status_code == 206
    assert head.headers["content-range"] == f"bytes 0-99/{size}"
    assert head.content == result.read_bytes()[:100]
    assert tail.status_code == 206
    assert tail.content == result.read_bytes()[-10:]
    assert beyond.status_code == 416


def test_expired_link_is_410_and_forged_link_is_404(api: Api, tmp_path: Path) -> None:
    api.storage.put(make_clip(tmp_path / "r.mp4", audio=False), "old/attempt-1.mp4")
    expired = api.storage.token("old/attempt-1.mp4", expires_at=datetime.now(UTC) - timedelta(1))
    with httpx.Client(base_url=api.base_url) as client:
        gone = client.get(f"/v1/files/{expired}")
        forged = client.get(f"/v1/files/{expired[:-4]}AAAA")
    assert gone.status_code == 410
    assert gone.json()["error"]["code"] == "result_expired"
    assert gone.json()["error"]["type"] == "invalid_request_error"
    assert forged.status_code == 404
    assert forged.json()["error"]["code"] == "resource_not_found"


def test_head_answers_like_get_without_the_body(api: Api, tmp_path: Path) -> None:
    result = make_clip(tmp_path / "result.mp4", audio=False)
    _, task = complete_one(api, result)
    path = local_path(api, task["results"][0])  # type: ignore[index]
    with httpx.Client(base_url=api.base_url) as client:
        got = client.get(path)
        head = client.head(path)
        ranged = client.head(path, headers={"Range": "bytes=0-9"})
    assert head.status_code == 200
    assert head.content == b""
    for name in ("content-type", "content-length", "etag", "accept-ranges"):
        assert head.headers[name] == got.headers[name]
    assert head.headers["content-length"] == str(result.stat().st_size)
    assert ranged.status_code == 206
    assert ranged.headers["content-range"] == f"bytes 0-9/{result.stat().st_size}"


def test_the_download_is_named_after_the_task(api: Api, tmp_path: Path) -> None:
    task_id, task = complete_one(api, make_clip(tmp_path / "result.mp4", audio=False))
    path = local_path(api, task["results"][0])  # type: ignore[index]
    with httpx.Client(base_url=api.base_url) as client:
        got = client.get(path)
    assert got.headers["content-disposition"] == f'attachment; filename="{task_id}.mp4"'


def test_a_wrong_method_on_a_result_link_allows_get_and_head(api: Api) -> None:
    with httpx.Client(base_url=api.base_url) as client:
        wrong = client.post("/v1/files/anything")
    assert wrong.status_code == 405
    assert wrong.json()["error"]["code"] == "method_not_allowed"
    assert wrong.headers["allow"] == "GET, HEAD"
