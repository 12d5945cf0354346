"""The pure tier: what runs here needs no real video, no network weights, no other
process and no waiting.

Tests here use real SQLite, real HTTP on 127.0.0.1 and threads, and move fake
clocks (tests/ticks.py, tests/stores.py) instead of sleeping. A test that needs
more belongs in tests/media (real media files, torch, ncnn, the bench) or
tests/process (it starts processes); tests/unit/test_tiers.py reads the imports,
and the fixture below catches a test that loads the networks while it runs.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator

import pytest

# What only the media tier loads: seconds of imports and the real networks.
NETWORK_MODULES = ("torch", "ncnn", "spandrel")


@pytest.fixture(autouse=True)
def _loads_no_networks(request: pytest.FixtureRequest) -> Iterator[None]:
    before = {name for name in NETWORK_MODULES if name in sys.modules}
    yield
    loaded = [name for name in NETWORK_MODULES if name in sys.modules and name not in before]
    if loaded:
        pytest.fail(f"{request.node.nodeid} loaded {', '.join(loaded)}: it belongs in tests/media")
