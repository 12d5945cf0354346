"""Shared fixtures for the whole suite, and the skips of tests whose device is missing.

``store``, ``clock`` and ``account``: a real SQLite store on a fake clock, for the
store and service tests of every tier. tests/integration/test_store_postgres.py
re-collects the store tests with its own fixtures of the same names, so they run
again on PostgreSQL.
"""

from __future__ import annotations

import ssl
from collections.abc import Iterator
from pathlib import Path

import pytest
import trustme

from tests.servers import LocalHttpServer
from tests.stores import FakeClock, sqlite_store
from upres.domain.accounts import Account
from upres.jobs.sql import SqlTaskStore


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Tests marked ``gpu`` skip cleanly on machines without CUDA (CI has none)."""
    gpu_items = [item for item in items if "gpu" in item.keywords]
    if not gpu_items:
        return  # nothing to decide: a selection without GPU tests need not import torch
    import torch  # noqa: PLC0415

    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA GPU")
    for item in gpu_items:
        item.add_marker(skip)


@pytest.fixture
def http_server() -> Iterator[LocalHttpServer]:
    """A fresh local HTTP server (see ``LocalHttpServer``), stopped after the test."""
    with LocalHttpServer() as server:
        yield server


@pytest.fixture(scope="session")
def ca() -> trustme.CA:
    """A test certificate authority; ``server_tls`` serves 127.0.0.1 and localhost with it."""
    return trustme.CA()


@pytest.fixture(scope="session")
def ca_file(ca: trustme.CA, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("ca") / "ca.pem"
    ca.cert_pem.write_to_path(str(path))
    return path


@pytest.fixture(scope="session")
def server_tls(ca: trustme.CA) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1", "localhost").configure_cert(context)
    return context


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def store(tmp_path: Path, clock: FakeClock) -> Iterator[SqlTaskStore]:
    store = sqlite_store(tmp_path / "upres.db", clock)
    yield store
    store.close()


@pytest.fixture
def account(store: SqlTaskStore) -> Account:
    return store.create_account(user_group="default", credits=1000, webhook_secret="whsec_test")
