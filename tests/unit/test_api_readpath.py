"""The polls' shortcut (api/readpath.py) answers as the routes do, byte for byte.

The reference is the same services served by an app whose key cache remembers
nothing (``key_cache_ttl_s=0``): there every poll goes through FastAPI's routes.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
from starlette.middleware import Middleware
from starlette.types import ASGIApp, Receive, Scope, Send

from tests.unit.api_harness import Api, live_server, running_api
from upres.api.app import create_app
from upres.config import Settings
from upres.domain.tasks import API_MODEL

# Their values differ between any two answers (when, which request, how much of
# which budget is left); the names must still be there.
_VOLATILE = {"date", "x-request-id", "x-ratelimit-remaining", "x-ratelimit-reset"}


class _RoutedCounter:
    """Counts the requests that reach FastAPI's routing (the innermost middleware)."""

    seen = 0

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            type(self).seen += 1
        await self.app(scope, receive, send)


@pytest.fixture
def api(tmp_path: Path) -> Iterator[Api]:
    with running_api(tmp_path) as running:
        yield running


@pytest.fixture
def routed(api: Api, tmp_path: Path) -> Iterator[str]:
    with routed_server(api, tmp_path) as base_url:
        yield base_url


@contextmanager
def routed_server(api: Api, data_dir: Path) -> Iterator[str]:
    """The base URL of the reference app on ``api``'s services: every poll through the routes."""
    settings = Settings(data_dir=data_dir, rate_limit_per_minute=1000, key_cache_ttl_s=0)
    with live_server(create_app(settings, services=api.services)) as base_url:
        yield base_url


def _submit(api: Api) -> str:
    body = {"model": API_MODEL, "video_urls": ["https://videos.example.com/clip.mp4"]}
    with api.client() as client:
        response = client.post("/v1/videos/generations", json=body)
    assert response.status_code == 200, response.text
    return str(response.json()["id"])


def _answer(base_url: str, path: str, headers: dict[str, str]) -> tuple[int, bytes, list[object]]:
    response = httpx.get(base_url + path, headers=headers)
    if "X-Request-Id" in headers:
        assert response.headers["x-request-id"] == headers["X-Request-Id"]
    kept = [(name, "*" if name in _VOLATILE else value) for name, value in response.headers.items()]
    return response.status_code, response.content, kept


def test_polls_answer_as_the_routes_do(api: Api, routed: str) -> None:
    assert_polls_answer_as_the_routes_do(api, routed)


def assert_polls_answer_as_the_routes_do(api: Api, routed: str) -> None:
    """Polls of ``api`` (after a submission, its key is remembered) and of ``routed``
    (the same services, every poll through the routes) answer alike."""
    pending = _submit(api)
    cancelled = _submit(api)
    with api.client() as client:
        assert client.post(f"/v1/tasks/{cancelled}/cancel").status_code == 200
    auth = {"Authorization": f"Bearer {api.owner.secret}"}
    paths = [
        f"/v1/tasks/{pending}",
        f"/v1/tasks/{cancelled}",
        f"/v1/tasks/{pending}?unused=1",
        "/v1/tasks/task-unified-1700000000-zzzzzzzz",  # nobody's
        "/v1/tasks/not-a-task-id",
        "/v1/credits",
    ]
    for path in paths:
        for headers in (auth, {**auth, "X-Request-Id": "mine-1"}):
            assert _answer(api.base_url, path, headers) == _answer(routed, path, headers), path


def test_a_remembered_key_skips_the_routes_and_anything_unusual_does_not(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    counted = Middleware(_RoutedCounter)
    original = create_app

    def counting_app(settings: Settings, **kwargs: object) -> object:
        app = original(settings, **kwargs)  # type: ignore[arg-type]
        app.user_middleware.append(counted)  # innermost: just before the routes
        return app

    monkeypatch.setattr("tests.unit.api_harness.create_app", counting_app)
    with running_api(tmp_path) as api, api.client() as client:
        task_id = _submit(api)
        _RoutedCounter.seen = 0
        assert client.get(f"/v1/tasks/{task_id}").status_code == 200  # remembered at submit
        assert client.get("/v1/credits").status_code == 200
        assert client.get("/v1/tasks/not-a-task-id").status_code == 400
        assert _RoutedCounter.seen == 0
        unusual = [
            client.head(f"/v1/tasks/{task_id}"),
            client.request("GET", f"/v1/tasks/{task_id}", content=b"{}"),
            client.get(f"/v1/tasks/{task_id}", headers={"Authorization": "Basic eDp5"}),
            client.get(f"/v1/tasks/{task_id}", headers={"Authorization": "Bearer upres_unknown"}),
            client.get("/v1/tasks"),
        ]
        assert [response.status_code for response in unusual] == [405, 200, 401, 401, 200]
        assert _RoutedCounter.seen == len(unusual)


def test_a_poll_over_the_rate_limit_is_refused_as_the_routes_refuse_it(tmp_path: Path) -> None:
    with running_api(tmp_path, rate_limit_per_minute=3) as api, api.client() as client:
        task_id = _submit(api)  # remembers the key, spends one hit
        answers = [client.get(f"/v1/tasks/{task_id}") for _ in range(3)]
    assert [answer.status_code for answer in answers] == [200, 200, 429]
    refused = answers[-1]
    assert refused.json()["error"]["code"] == "rate_limit_exceeded"
    assert refused.headers["X-RateLimit-Remaining"] == "0"
    assert int(refused.headers["Retry-After"]) >= 1
