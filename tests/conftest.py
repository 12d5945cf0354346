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
from upres.db.task_store import SqlTaskStore
from upres.domain.accounts import Account


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Tests marked ``gpu`` skip cleanly on machines without CUDA (CI has none), tests
    marked ``vulkan`` on machines without any Vulkan device (CI has llvmpipe)."""
    for marker, present, reason in (
        ("gpu", _has_cuda, "needs a CUDA GPU"),
        ("vulkan", _has_vulkan, "no Vulkan device at all"),
    ):
        marked = [item for item in items if marker in item.keywords]
        # Asked only when a marked test is selected: the others need not import torch or ncnn.
        if marked and not present():
            for item in marked:
                item.add_marker(pytest.mark.skip(reason=reason))


def _has_cuda() -> bool:
    import torch  # noqa: PLC0415

    return torch.cuda.is_available()


def _has_vulkan() -> bool:
    from upres.models.ncnn_runtime import vulkan_devices  # noqa: PLC0415

    return bool(vulkan_devices())


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
