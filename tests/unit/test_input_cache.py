"""A worker's input cache: one copy per task, from the storage when there is one there."""

from __future__ import annotations

from pathlib import Path

from tests.stores import new_task
from upres.domain.storage_keys import chunk_source_key, upload_key
from upres.domain.uploads import kept_input_id
from upres.inputs.netpolicy import AddressPolicy
from upres.jobs.input_cache import FetchLimits, InputCache
from upres.storage import MemoryStorage


def _cache(storage: MemoryStorage, tmp_path: Path, keep: int = 2) -> InputCache:
    return InputCache(
        storage=storage,
        policy=AddressPolicy(False),
        limits=FetchLimits(max_bytes=1 << 20, timeout_s=1),
        directory=tmp_path / "inputs",
        keep=keep,
    )


def _file(tmp_path: Path, body: bytes) -> Path:
    path = tmp_path / f"{len(body)}.bin"
    path.write_bytes(body)
    return path


def test_an_input_the_api_kept_is_read_from_storage_not_downloaded(store, clock, account, tmp_path):
    storage = MemoryStorage()
    task = store.create_task(new_task(account, clock))  # its URL is never reachable here
    storage.put(_file(tmp_path, b"kept video"), upload_key(kept_input_id(task.id)))

    assert _cache(storage, tmp_path).get(task).read_bytes() == b"kept video"


def test_a_tasks_stored_input_is_copied_once_for_all_its_chunks(store, clock, account, tmp_path):
    storage = MemoryStorage()
    task = store.create_task(new_task(account, clock))
    storage.put(_file(tmp_path, b"source"), chunk_source_key(task.id))
    cache = _cache(storage, tmp_path)

    first = cache.get(task, stored=chunk_source_key(task.id))
    storage.delete(chunk_source_key(task.id))
    again = cache.get(task, stored=chunk_source_key(task.id))

    assert first == again
    assert again.read_bytes() == b"source"


def test_the_cache_keeps_the_newest_tasks_and_clears_its_folder(store, clock, account, tmp_path):
    storage = MemoryStorage()
    tasks = [store.create_task(new_task(account, clock)) for _ in range(3)]
    for task in tasks:
        storage.put(_file(tmp_path, task.id.encode()), chunk_source_key(task.id))
    cache = _cache(storage, tmp_path, keep=2)

    paths = [cache.get(task, stored=chunk_source_key(task.id)) for task in tasks]

    assert [path.exists() for path in paths] == [False, True, True]
    cache.clear()
    assert not (tmp_path / "inputs").exists()
