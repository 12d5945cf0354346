"""Stored files read in ranges: the block reader's counting, the passes of a
``RangedInput`` sharing its blocks, and which stored key a chunked task reads."""

from __future__ import annotations

import io
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from tests.stores import FakeClock, new_task, sqlite_store
from upres.db.task_store import SqlTaskStore
from upres.domain.storage_keys import chunk_source_key, upload_key
from upres.domain.tasks import Task
from upres.domain.uploads import kept_input_id, upload_id_of, upload_url, uploads_read_by
from upres.errors import FetchError, StorageUnavailable
from upres.inputs.ranged import RangedInput
from upres.jobs.input_cache import chunk_source
from upres.storage.memory import MemoryStorage
from upres.storage.readers import BytesReader, FileReader

DATA = bytes(range(256)) * 64  # 16 KiB


class _Failing(BytesReader):
    def _fetch(self, begin: int, end: int) -> bytes:
        raise StorageUnavailable("the bucket is down")


def test_a_reader_fetches_only_the_blocks_read_and_counts_them() -> None:
    reader = BytesReader(DATA, block_size=1024)
    reader.seek(5000)
    assert reader.read(100) == DATA[5000:5100]
    assert reader.bytes_received == 1024  # the one block holding them
    reader.seek(5050)
    assert reader.read(10) == DATA[5050:5060]
    assert reader.bytes_received == 1024  # cached
    reader.seek(-24, io.SEEK_END)
    assert reader.read() == DATA[-24:]
    assert reader.bytes_received == 2048


def test_a_file_reader_reads_in_place(tmp_path: Path) -> None:
    path = tmp_path / "f"
    path.write_bytes(DATA)
    with FileReader(path, block_size=4096) as reader:
        reader.seek(9000)
        assert reader.read(8) == DATA[9000:9008]
        assert reader.bytes_received == 4096


def test_a_failed_fetch_is_raised_and_kept() -> None:
    reader = _Failing(DATA, block_size=1024)
    with pytest.raises(StorageUnavailable):
        reader.read(10)
    assert isinstance(reader.error, StorageUnavailable)


def test_a_budget_stops_the_reads() -> None:
    reader = BytesReader(DATA, block_size=1024)
    reader._max_bytes = 2048
    reader.read(2048)
    with pytest.raises(FetchError, match="more than 2048 bytes"):
        reader.read(1)


def test_the_passes_of_a_ranged_input_share_one_reader_and_its_blocks() -> None:
    opened: list[BytesReader] = []

    def open_reader() -> BytesReader:
        opened.append(BytesReader(DATA, block_size=1024))
        return opened[-1]

    with RangedInput(open_reader, name="k") as source:
        first, second = source.open(), source.open()
        first.seek(3000)
        assert first.read(10) == DATA[3000:3010]
        assert second.read(10) == DATA[:10]  # a position of its own
        second.seek(3005)
        assert second.read(5) == DATA[3005:3010]
        assert source.bytes_read == 2048  # blocks 0 and 2, each fetched once
    assert len(opened) == 1
    assert opened[0].closed


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SqlTaskStore]:
    store = sqlite_store(tmp_path / "db.sqlite", FakeClock())
    yield store
    store.close()


def _task(store: SqlTaskStore, input_url: str) -> Task:
    clock = FakeClock()
    account = store.create_account(user_group="default", credits=100, webhook_secret="whsec_t")
    return store.create_task(replace(new_task(account, clock), input_url=input_url))


def test_a_chunked_task_reads_its_upload_its_kept_input_or_the_planners_copy(
    store: SqlTaskStore, tmp_path: Path
) -> None:
    storage = MemoryStorage()
    uploaded = _task(store, upload_url("upload-0123456789abcdef"))
    assert chunk_source(uploaded, storage) == upload_key("upload-0123456789abcdef")
    fetched = _task(store, "https://example.com/v.mp4")
    assert chunk_source(fetched, storage) == chunk_source_key(fetched.id)
    kept = upload_key(kept_input_id(fetched.id))
    (tmp_path / "kept").write_bytes(DATA)
    storage.put(tmp_path / "kept", kept)
    assert chunk_source(fetched, storage) == kept


def test_a_task_holds_the_upload_it_names_and_its_kept_input() -> None:
    url = upload_url("upload-0123456789abcdef")
    assert upload_id_of(url) == "upload-0123456789abcdef"
    assert uploads_read_by("task-1", url) == {"upload-0123456789abcdef", kept_input_id("task-1")}
    assert uploads_read_by("task-1", "https://example.com/v.mp4") == {kept_input_id("task-1")}
