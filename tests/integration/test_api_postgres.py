"""The API on PostgreSQL through the real uvicorn: polls read on a thread (a network
round trip stays off the event loop) and answer as the routes do.

Runs against the database at ``UPRES_TEST_POSTGRES_URL`` (emptied first!) and
skips when it is unset.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.stores import FakeClock, postgres_store
from tests.unit.api_harness import Api, live_server, real_services
from tests.unit.test_api_readpath import assert_polls_answer_as_the_routes_do, routed_server
from upres.api.app import create_app
from upres.clock import utc_now
from upres.config import Settings
from upres.services.keys import KeyService
from upres.storage.local import LocalStorage

URL = os.environ.get("UPRES_TEST_POSTGRES_URL")
pytestmark = pytest.mark.skipif(not URL, reason="UPRES_TEST_POSTGRES_URL is not set")


@pytest.fixture
def api(tmp_path: Path) -> Iterator[Api]:
    assert URL is not None
    store = postgres_store(URL, FakeClock(utc_now()))
    storage = LocalStorage(tmp_path / "results", base_url="http://upres.test", secret=b"s" * 32)
    services = dataclasses.replace(real_services(store, storage), inline_reads=False)
    settings = Settings(data_dir=tmp_path, rate_limit_per_minute=1000)
    keys = KeyService(store)
    try:
        with live_server(create_app(settings, services=services)) as base_url:
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


def test_polls_on_postgresql_answer_as_the_routes_do(api: Api, tmp_path: Path) -> None:
    with routed_server(api, tmp_path) as routed:
        assert_polls_answer_as_the_routes_do(api, routed)
