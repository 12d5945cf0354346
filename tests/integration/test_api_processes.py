"""Several API processes: ``UPRES_API_WORKERS`` uvicorn processes in one ``upres
serve``, and two ``upres serve`` replicas whose rate limits hold together through
a real Redis (``UPRES_TEST_REDIS_URL``, started by .ci/run)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import httpx
import psutil
import pytest
from testkit.net import free_port

from tests.integration.serve_harness import Serve, create_key

pytestmark = pytest.mark.slow

REDIS_URL = os.environ.get("UPRES_TEST_REDIS_URL")
PER_KEY = 6
AUTH_FAILURES = 4


@pytest.fixture
def replicas(tmp_path: Path) -> Iterator[tuple[list[Serve], str]]:
    """Two replicas on one database and one Redis, the first with two API processes."""
    if REDIS_URL is None:
        pytest.skip("UPRES_TEST_REDIS_URL is not set (.ci/run starts a Redis)")
    import redis  # noqa: PLC0415

    redis.Redis.from_url(REDIS_URL).flushdb()  # the test Redis is ours alone
    env = {
        **os.environ,
        "UPRES_REDIS_URL": REDIS_URL,
        "UPRES_RATE_LIMIT_PER_MINUTE": str(PER_KEY),
        "UPRES_AUTH_FAILURES_PER_MINUTE": str(AUTH_FAILURES),
    }
    key = create_key(tmp_path, credits=100, env=env)
    servers = [
        Serve(
            tmp_path,
            port=free_port(),
            env={**env, "UPRES_API_WORKERS": str(processes)},
            args=("--workers", "0"),
        )
        for processes in (2, 1)
    ]
    for server in servers:
        server.launch()
    try:
        for server in servers:
            server.wait_healthy()
        yield servers, key.secret
    finally:
        for server in servers:
            server.stop()


def _credits(server: Serve, secret: str) -> httpx.Response:
    headers = {"Authorization": f"Bearer {secret}"}
    # A new connection each time, so that both API processes of a server take turns.
    return httpx.get(f"{server.base_url}/v1/credits", headers=headers, timeout=30)


def test_one_budget_per_key_and_per_address_across_replicas(
    replicas: tuple[list[Serve], str],
) -> None:
    servers, secret = replicas
    answers = [_credits(servers[i % 2], secret) for i in range(PER_KEY + 2)]
    assert [a.status_code for a in answers] == [200] * PER_KEY + [429, 429]
    assert [a.headers["X-RateLimit-Remaining"] for a in answers[:PER_KEY]] == [
        str(PER_KEY - 1 - i) for i in range(PER_KEY)
    ]
    guesses = [_credits(servers[i % 2], f"upres_guess{i}") for i in range(AUTH_FAILURES + 2)]
    assert [g.status_code for g in guesses] == [401] * AUTH_FAILURES + [429, 429]
    assert int(guesses[-1].headers["Retry-After"]) >= 1


def test_api_workers_setting_serves_from_several_processes(tmp_path: Path) -> None:
    env = {**os.environ, "UPRES_API_WORKERS": "2", "UPRES_RATE_LIMIT_PER_MINUTE": "1000"}
    key = create_key(tmp_path, credits=100, env=env)
    server = Serve(tmp_path, port=free_port(), env=env, args=("--workers", "0"))
    server.start()
    try:
        answers = [_credits(server, key.secret) for _ in range(6)]
        assert {a.status_code for a in answers} == {200}
        children = psutil.Process(server.pid).children(recursive=True)
        serving = [child for child in children if "spawn_main" in " ".join(child.cmdline())]
        assert len(serving) >= 2
    finally:
        server.stop()
