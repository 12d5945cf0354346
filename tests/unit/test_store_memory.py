"""What only the in-memory store needs shown; the store contract tests run on it
through the ``store`` fixture."""

from __future__ import annotations

from upres.jobs.memory import MemoryTaskStore
from upres.jobs.store import TaskStore


def test_every_store_method_is_implemented():
    # Subclassing the protocol lets mypy check the signatures, but a method left
    # out would fall back to the protocol's stub and return None.
    methods = [
        name for name, value in vars(TaskStore).items() if callable(value) and name[0] != "_"
    ]
    stubs = [name for name in methods if getattr(MemoryTaskStore, name) is getattr(TaskStore, name)]

    assert "claim" in methods
    assert stubs == []
