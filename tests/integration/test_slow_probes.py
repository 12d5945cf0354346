"""Slow probes against the real server process: they never stall other requests,
and their number is bounded per key (429) and in all (503), with Retry-After."""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from functools import partial

import httpx
import pytest
from testkit.net import free_port

from tests.integration.serve_harness import CreatedKey, Serve, create_key
from tests.servers import LocalHttpServer, Route

pytestmark = pytest.mark.slow

PROBE_TIMEOUT_S = 6.0
PER_KEY = 30
PENDING = 45
# Reads answer in milliseconds; this bound only absorbs a loaded 2-core CI machine.
READ_BOUND_S = 2.0


@pytest.fixture(scope="module")
def env() -> dict[str, str]:
    return {
        **os.environ,
        "UPRES_ALLOW_PRIVATE_NETWORKS": "true",
        "UPRES_PROBE_TIMEOUT_S": str(PROBE_TIMEOUT_S),
        "UPRES_SUBMIT_THREADS": "16",
        "UPRES_SUBMIT_MAX_PER_KEY": str(PER_KEY),
        "UPRES_SUBMIT_MAX_PENDING": str(PENDING),
        "UPRES_RATE_LIMIT_PER_MINUTE": "100000",
    }


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory, env: dict[str, str]) -> list[CreatedKey]:
    data_dir = tmp_path_factory.getbasetemp() / "slow-probes"
    return [create_key(data_dir, credits=1000, env=env) for _ in range(2)]


@pytest.fixture(scope="module")
def server(
    keys: list[CreatedKey], env: dict[str, str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Serve]:
    data_dir = tmp_path_factory.getbasetemp() / "slow-probes"
    serve = Serve(data_dir, port=free_port(), env=env, args=("--workers", "0"))
    serve.start()
    yield serve
    serve.stop()


@pytest.fixture(scope="module")
def hanging() -> Iterator[LocalHttpServer]:
    with LocalHttpServer() as videos:
        videos.routes["/never.mp4"] = Route(body=b"late", delay_s=PROBE_TIMEOUT_S * 3)
        yield videos


def _submit(
    base_url: str, secret: str, url: str, path: str = "/v1/videos/generations"
) -> httpx.Response:
    body = {"model": "topaz-video-upscale", "video_urls": [url]}
    headers = {"Authorization": f"Bearer {secret}"}
    with httpx.Client(base_url=base_url, headers=headers, timeout=120) as http:
        return http.post(path, json=body)


def _timed_get(http: httpx.Client, path: str) -> tuple[int, float]:
    started = time.perf_counter()
    status = http.get(path).status_code
    return status, time.perf_counter() - started


def test_reads_answer_while_probes_wait_and_the_bounds_hold(
    server: Serve, keys: list[CreatedKey], hanging: LocalHttpServer
) -> None:
    never = hanging.url("/never.mp4")
    first, second = keys
    # key 1 sends more than its bound; key 2 then fills the total bound and more.
    plan = [first.secret] * (PER_KEY + 5) + [second.secret] * (PENDING - PER_KEY + 5)
    with ThreadPoolExecutor(len(plan)) as pool:
        futures = []
        for index, secret in enumerate(plan):
            if index == PER_KEY + 5:  # key 1's requests are all admitted or refused
                time.sleep(1.0)
            futures.append(pool.submit(_submit, server.base_url, secret, never))
        time.sleep(1.0)  # every probe admitted has started or waits for a thread
        headers = {"Authorization": f"Bearer {second.secret}"}
        with httpx.Client(base_url=server.base_url, headers=headers, timeout=30) as http:
            reads = [
                _timed_get(http, path)
                for _ in range(5)
                for path in ("/healthz", "/v1/credits", "/v1/tasks/task-unified-1-abcdefgh")
            ]
        answers = [future.result() for future in futures]

    assert [status for status, _ in reads] == [200, 200, 404] * 5
    assert max(seconds for _, seconds in reads) < READ_BOUND_S
    by_status: dict[int, list[httpx.Response]] = {}
    for answer in answers:
        by_status.setdefault(answer.status_code, []).append(answer)
    assert sorted((status, len(found)) for status, found in by_status.items()) == [
        (400, PENDING),
        (429, 5),
        (503, 5),
    ]
    assert all(a.json()["error"]["code"] == "video_probe_failed" for a in by_status[400])
    for refused in (*by_status[429], *by_status[503]):
        assert int(refused.headers["Retry-After"]) >= 1
    assert by_status[429][0].json()["error"]["code"] == "rate_limit_exceeded"
    assert by_status[503][0].json()["error"]["code"] == "service_unavailable"
    assert {a.request.headers["Authorization"] for a in by_status[429]} == {
        f"Bearer {first.secret}"
    }


def test_the_bounds_are_free_again_once_the_probes_end(
    server: Serve, keys: list[CreatedKey], hanging: LocalHttpServer
) -> None:
    answer = _submit(server.base_url, keys[0].secret, hanging.url("/missing.mp4"))
    assert answer.status_code == 400
    assert answer.json()["error"]["code"] == "video_probe_failed"


def test_estimates_probe_under_the_same_bounds(
    server: Serve, keys: list[CreatedKey], hanging: LocalHttpServer
) -> None:
    estimate = partial(_submit, path="/v1/videos/generations/estimate")
    never = hanging.url("/never.mp4")
    with ThreadPoolExecutor(PER_KEY + 3) as pool:
        futures = [
            pool.submit(estimate, server.base_url, keys[0].secret, never)
            for _ in range(PER_KEY + 3)
        ]
        time.sleep(1.0)
        with httpx.Client(base_url=server.base_url, timeout=30) as http:
            status, seconds = _timed_get(http, "/healthz")
        answers = sorted(future.result().status_code for future in futures)
    assert (status, seconds < READ_BOUND_S) == (200, True)
    assert answers == [400] * PER_KEY + [429] * 3


def _stalled_upload(base_url: str, secret: str) -> socket.socket:
    """An upload that announces 1 MB, sends 1 KB of it and then waits."""
    host, port = base_url.removeprefix("http://").split(":")
    connection = socket.create_connection((host, int(port)))
    connection.sendall(
        f"POST /v1/uploads HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {secret}\r\n"
        "Content-Type: video/mp4\r\nContent-Length: 1000000\r\n\r\n".encode()
        + b"\0" * 1000
    )
    return connection


def test_uploads_trickling_in_hold_slots_of_their_key_not_the_server(
    server: Serve, keys: list[CreatedKey], hanging: LocalHttpServer
) -> None:
    first, second = keys
    stalled = [_stalled_upload(server.base_url, first.secret) for _ in range(PER_KEY)]
    try:
        time.sleep(1.0)  # every upload admitted and waiting for its body
        one_more = _submit(server.base_url, first.secret, hanging.url("/missing.mp4"))
        headers = {"Authorization": f"Bearer {second.secret}"}
        with httpx.Client(base_url=server.base_url, headers=headers, timeout=30) as http:
            reads = [_timed_get(http, path) for path in ("/healthz", "/v1/credits") * 5]
    finally:
        for connection in stalled:
            connection.close()

    assert one_more.status_code == 429
    assert "uploads" in one_more.json()["error"]["message"]
    assert [status for status, _ in reads] == [200, 200] * 5
    assert max(seconds for _, seconds in reads) < READ_BOUND_S
    # A hung-up upload frees its slot: the key submits again.
    deadline = time.monotonic() + 10
    while (
        answer := _submit(server.base_url, first.secret, hanging.url("/missing.mp4"))
    ).status_code == 429:
        assert time.monotonic() < deadline
        time.sleep(0.2)
    assert answer.status_code == 400
