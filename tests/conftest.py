"""Shared fixtures for the whole suite."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch

from tests.servers import LocalHttpServer


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Tests marked ``gpu`` skip cleanly on machines without CUDA (CI has none)."""
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA GPU")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


@pytest.fixture
def http_server() -> Iterator[LocalHttpServer]:
    """A fresh local HTTP server (see ``LocalHttpServer``), stopped after the test."""
    with LocalHttpServer() as server:
        yield server
