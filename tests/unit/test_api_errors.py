"""Every error status of the API, in the spec's envelope, through the real server."""

from __future__ import annotations

import http.client
import json
import logging
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest

from tests.unit.api_harness import INTERNAL_HOST, Api, running_api
from upres.api.deps import Services
from upres.config import Settings
from upres.domain.accounts import ApiKey
from upres.domain.tasks import API_MODEL, Task

VIDEO = "https://videos.example.com/clip.mp4"
GENERATIONS = "/v1/videos/generations"
BODY_LIMIT = Settings().max_request_bytes


@pytest.fixture
def api(tmp_path: Path) -> Iterator[Api]:
    with running_api(tmp_path) as running:
        yield running


def envelope(response: httpx.Response, status: int, code: str, type_: str) -> dict[str, str]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    assert response.headers["x-request-id"]
    error = response.json()["error"]
    assert error["code"] == code
    assert error["type"] == type_
    assert error["message"]
    return error


@pytest.mark.parametrize(
    ("body", "param", "message_part"),
    [
        ({"model": API_MODEL, "video_urls": []}, "video_urls", "must not be empty"),
        ({"model": API_MODEL}, "video_urls", "is required and must not be empty"),
        ({"model": API_MODEL, "video_urls": [VIDEO, VIDEO]}, "video_urls", "Only 1 video"),
        ({"model": API_MODEL, "video_urls": ["ftp://x.example/a.mp4"]}, "video_urls", "http"),
        ({"model": "other-model", "video_urls": [VIDEO]}, "model", "other-model"),
        ({"video_urls": [VIDEO]}, "model", "is required"),
        ({"model": 7, "video_urls": [VIDEO]}, "model", "string"),
        ({"model": API_MODEL, "video_urls": "not-a-list"}, "video_urls", "list"),
        (
            {"model": API_MODEL, "video_urls": [VIDEO], "callback_url": "http://h.example/cb"},
            "callback_url",
            "https",
        ),
        (
            {
                "model": API_MODEL,
                "video_urls": [VIDEO],
                "callback_url": f"https://{INTERNAL_HOST}/",
            },
            "callback_url",
            "not allowed",
        ),
        (
            {"model": API_MODEL, "video_urls": [VIDEO], "model_params": "4"},
            "model_params",
            "model_params",
        ),
    ],
)
def test_invalid_parameters(api: Api, body: object, param: str, message_part: str) -> None:
    with api.client() as client:
        response = client.post(GENERATIONS, json=body)
    error = envelope(response, 400, "invalid_parameter", "invalid_request_error")
    assert error["param"] == param
    assert message_part in error["message"]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b'{"model": ', "Request body is not valid JSON"),
        (b"", "Request body is required"),
        (b"[1, 2]", "Request body must be a JSON object"),
        (b'"text"', "Request body must be a JSON object"),
        (b'{"model": "\xff"}', "Request body could not be read as JSON"),
    ],
)
def test_malformed_bodies_use_the_envelope(api: Api, content: bytes, message: str) -> None:
    with api.client() as client:
        response = client.post(
            GENERATIONS, content=content, headers={"Content-Type": "application/json"}
        )
    error = envelope(response, 400, "invalid_parameter", "invalid_request_error")
    assert error["message"].startswith(message)
    assert "param" not in error


def test_probe_failure_is_400_video_probe_failed(api: Api) -> None:
    with api.client() as client:
        response = client.post(
            GENERATIONS, json={"model": API_MODEL, "video_urls": ["https://unreachable.example/a"]}
        )
    error = envelope(response, 400, "video_probe_failed", "invalid_request_error")
    assert "video duration" in error["message"]


@pytest.mark.parametrize(("method", "suffix"), [("GET", ""), ("POST", "/cancel")])
def test_malformed_task_id_is_invalid_task_id(api: Api, method: str, suffix: str) -> None:
    with api.client() as client:
        response = client.request(method, f"/v1/tasks/abc-123{suffix}")
    error = envelope(response, 400, "invalid_task_id", "invalid_request_error")
    assert error["param"] == "task_id"


@pytest.mark.parametrize("secret", ["", "upres_not-a-key"])
def test_missing_or_unknown_key_is_401(api: Api, secret: str) -> None:
    with api.client(secret) as client:
        response = client.get("/v1/credits")
    envelope(response, 401, "unauthorized", "authentication_error")
    assert response.headers["www-authenticate"] == "Bearer"


def test_revoked_key_is_401(api: Api) -> None:
    api.keys.revoke(api.owner.key.id)
    with api.client() as client:
        response = client.post(GENERATIONS, json={"model": API_MODEL, "video_urls": [VIDEO]})
    envelope(response, 401, "unauthorized", "authentication_error")


def test_empty_account_is_402(api: Api) -> None:
    broke = api.keys.create(credits=0.0)
    with api.client(broke.secret) as client:
        response = client.post(GENERATIONS, json={"model": API_MODEL, "video_urls": [VIDEO]})
    envelope(response, 402, "insufficient_quota", "insufficient_quota")


def test_key_without_the_model_is_403(api: Api) -> None:
    limited = api.keys.create(credits=100.0, models=("some-other-model",))
    with api.client(limited.secret) as client:
        response = client.post(GENERATIONS, json={"model": API_MODEL, "video_urls": [VIDEO]})
    error = envelope(response, 403, "model_access_denied", "invalid_request_error")
    assert API_MODEL in error["message"]


def test_other_accounts_task_is_404(api: Api) -> None:
    stranger = api.keys.create(credits=1000.0)
    with api.client() as client:
        created = client.post(GENERATIONS, json={"model": API_MODEL, "video_urls": [VIDEO]})
    task_id = created.json()["id"]
    with api.client(stranger.secret) as client:
        seen = client.get(f"/v1/tasks/{task_id}")
        cancel = client.post(f"/v1/tasks/{task_id}/cancel")
    envelope(seen, 404, "resource_not_found", "invalid_request_error")
    envelope(cancel, 404, "resource_not_found", "invalid_request_error")


def test_unknown_route_is_404_and_wrong_method_is_405(api: Api) -> None:
    with api.client() as client:
        missing = client.get("/v1/nothing-here")
        wrong = client.delete("/v1/videos/generations")
    envelope(missing, 404, "resource_not_found", "invalid_request_error")
    envelope(wrong, 405, "method_not_allowed", "invalid_request_error")
    assert wrong.headers["allow"] == "POST"


def _raw_post(api: Api, headers: dict[str, str], body: bytes = b"") -> httpx.Response:
    """POST to GENERATIONS with exactly these headers and body bytes, then read the answer.

    httpx would send the whole body first; this stops sending where ``body`` ends,
    so an answer proves the server did not wait for the rest.
    """
    conn = http.client.HTTPConnection(urlsplit(api.base_url).netloc, timeout=10)
    try:
        conn.putrequest("POST", GENERATIONS)
        for name, value in {"Authorization": f"Bearer {api.owner.secret}", **headers}.items():
            conn.putheader(name, value)
        conn.endheaders()
        conn.send(body)
        answer = conn.getresponse()
        return httpx.Response(answer.status, headers=answer.getheaders(), content=answer.read())
    finally:
        conn.close()


def _chunk(data: bytes) -> bytes:
    return f"{len(data):x}\r\n".encode() + data + b"\r\n"


def test_declared_length_over_the_limit_is_413_before_any_body(api: Api) -> None:
    response = _raw_post(api, {"Content-Length": str(BODY_LIMIT + 1)})
    error = envelope(response, 413, "request_too_large", "invalid_request_error")
    assert str(BODY_LIMIT) in error["message"]
    assert response.headers["connection"] == "close"


def test_chunked_body_over_the_limit_is_413_once_counted(api: Api) -> None:
    """The body never ends: the answer comes as soon as the count passes the limit."""
    parts = b"".join(_chunk(b"x" * 65536) for _ in range(BODY_LIMIT // 65536)) + _chunk(b"x")
    response = _raw_post(api, {"Transfer-Encoding": "chunked"}, parts)
    envelope(response, 413, "request_too_large", "invalid_request_error")


def test_bodies_within_the_limit_still_work(api: Api) -> None:
    body = json.dumps({"model": API_MODEL, "video_urls": [VIDEO]}).encode()
    json_type = {"Content-Type": "application/json"}
    with api.client() as client:
        plain = client.post(GENERATIONS, content=body, headers=json_type)
        chunked = client.post(GENERATIONS, content=iter([body[:10], body[10:]]), headers=json_type)
        listed = client.get("/v1/models")
        documented = client.get("/openapi.json").json()
    assert "content-length" not in chunked.request.headers
    assert (plain.status_code, chunked.status_code, listed.status_code) == (200, 200, 200)
    for item in documented["paths"].values():
        for operation in item.values():
            assert "413" in operation["responses"]


def test_rate_limit_is_429_with_headers(tmp_path: Path) -> None:
    with running_api(tmp_path, rate_limit_per_minute=2) as api, api.client() as client:
        first = client.get("/v1/models")
        second = client.get("/v1/models")
        third = client.get("/v1/models")
    assert first.headers["x-ratelimit-limit"] == "2"
    assert first.headers["x-ratelimit-remaining"] == "1"
    assert second.headers["x-ratelimit-remaining"] == "0"
    envelope(third, 429, "rate_limit_exceeded", "rate_limit_error")
    assert third.headers["x-ratelimit-limit"] == "2"
    assert third.headers["x-ratelimit-remaining"] == "0"
    # A moving window: a hit is back when the oldest one leaves the minute.
    assert 1 <= int(third.headers["retry-after"]) <= 60
    assert int(third.headers["x-ratelimit-reset"]) >= int(third.headers["retry-after"])


class ExplodingTasks:
    """Task use cases with a bug in ``get``, to see what a client gets for a crash."""

    def __init__(self, inner: Services) -> None:
        self._inner = inner.tasks

    def submit_idempotent(self, **kwargs: object) -> object:
        return self._inner.submit_idempotent(**kwargs)  # type: ignore[arg-type]

    def cancel(self, *, key: ApiKey, task_id: str) -> Task:
        return self._inner.cancel(key=key, task_id=task_id)

    def get(self, *, key: ApiKey, task_id: str) -> Task:
        raise RuntimeError("a bug deep inside")


def test_unexpected_error_is_500_with_request_id(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    def explode(services: Services) -> Services:
        return replace(services, tasks=ExplodingTasks(services))

    with running_api(tmp_path, adjust=explode) as api, api.client() as client:
        response = client.get("/v1/tasks/task-unified-1-abcdefgh", headers={"x-request-id": "r-1"})
    error = envelope(response, 500, "internal_error", "api_error")
    assert response.headers["x-request-id"] == "r-1"
    assert "r-1" in error["message"]
    assert "a bug deep inside" not in response.text
    logged = [r for r in caplog.records if r.levelno == logging.ERROR and "r-1" in r.getMessage()]
    assert logged
    assert logged[0].exc_info is not None
