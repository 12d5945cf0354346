"""Local result storage: atomic puts, signed expiring links, the signing secret, the janitor."""

from __future__ import annotations

import os
import stat
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import boto3
import pytest

from tests.stores import START, FakeClock, completed_task, sqlite_store
from upres.config import Settings
from upres.db.task_store import SqlTaskStore
from upres.errors import InvalidRequest, NotFound, ResultExpired, ServiceUnavailable
from upres.storage import (
    Janitor,
    LocalStorage,
    MemoryStorage,
    ResultStorage,
    build_storage,
    load_or_create_secret,
)
from upres.storage.local import SECRET_FILE
from upres.storage.s3 import S3Storage, s3_client

BASE = "https://upres.example/"


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def storage(tmp_path: Path, clock: FakeClock) -> LocalStorage:
    return LocalStorage(tmp_path / "results", base_url=BASE, secret=b"s" * 32, clock=clock)


@pytest.fixture
def src(tmp_path: Path) -> Path:
    path = tmp_path / "out.mp4"
    path.write_bytes(os.urandom(10_000))
    return path


def _token(url: str) -> str:
    parts = urlsplit(url)
    assert parts.path.startswith("/v1/files/")
    return parts.path.removeprefix("/v1/files/")


@dataclass(frozen=True)
class Backend:
    """A storage under test and how to read back what it holds."""

    storage: ResultStorage
    read: Callable[[str], bytes]


@pytest.fixture(params=["local", "memory"])
def backend(request: pytest.FixtureRequest, storage: LocalStorage) -> Backend:
    if request.param == "local":
        return Backend(storage, lambda key: storage.path(key).read_bytes())
    memory = MemoryStorage()
    return Backend(memory, memory.read)


UNSAFE_KEYS = ["", "/etc/passwd", "../x", "a/../../x", "a//b", ".hidden", "a/./b", "a\\b"]


class TestContract:
    """What every ResultStorage promises, over each backend that runs in-process."""

    def test_put_copies(self, backend: Backend, src: Path) -> None:
        backend.storage.put(src, "task-unified-1-abcdefgh/attempt-1.mp4")
        assert backend.read("task-unified-1-abcdefgh/attempt-1.mp4") == src.read_bytes()
        assert src.exists()
        assert backend.storage.exists("task-unified-1-abcdefgh/attempt-1.mp4")

    def test_put_replaces_and_a_failed_put_changes_nothing(
        self, backend: Backend, src: Path, tmp_path: Path
    ) -> None:
        newer = tmp_path / "newer.mp4"
        newer.write_bytes(b"newer")
        backend.storage.put(src, "a/b.mp4")
        backend.storage.put(newer, "a/b.mp4")
        assert backend.read("a/b.mp4") == b"newer"
        with pytest.raises(ServiceUnavailable, match="Cannot store"):
            backend.storage.put(tmp_path / "missing.mp4", "a/b.mp4")
        assert backend.read("a/b.mp4") == b"newer"

    def test_delete_and_absent_keys(self, backend: Backend, src: Path) -> None:
        assert not backend.storage.exists("t1/attempt-1.mp4")
        backend.storage.put(src, "t1/attempt-1.mp4")
        backend.storage.delete("t1/attempt-1.mp4")
        assert not backend.storage.exists("t1/attempt-1.mp4")
        backend.storage.delete("t1/attempt-1.mp4")

    def test_links_differ_by_key_and_expiry(self, backend: Backend, clock: FakeClock) -> None:
        soon, later = clock() + timedelta(hours=1), clock() + timedelta(hours=2)
        links = {
            backend.storage.url("t/a.mp4", expires_at=soon),
            backend.storage.url("t/a.mp4", expires_at=later),
            backend.storage.url("t/b.mp4", expires_at=soon),
        }
        assert len(links) == 3

    @pytest.mark.parametrize("key", UNSAFE_KEYS)
    def test_unsafe_keys_are_refused(
        self, backend: Backend, src: Path, clock: FakeClock, key: str
    ) -> None:
        with pytest.raises(InvalidRequest):
            backend.storage.put(src, key)
        with pytest.raises(InvalidRequest):
            backend.storage.url(key, expires_at=clock())
        with pytest.raises(InvalidRequest):
            backend.storage.exists(key)
        with pytest.raises(InvalidRequest):
            backend.storage.delete(key)


class TestLocalLayout:
    def test_put_leaves_only_the_file(self, storage: LocalStorage, src: Path) -> None:
        storage.put(src, "task-unified-1-abcdefgh/attempt-1.mp4")
        stored = storage.path("task-unified-1-abcdefgh/attempt-1.mp4")
        assert [p.name for p in stored.parent.iterdir()] == ["attempt-1.mp4"]

    def test_failed_put_leaves_no_partial(
        self, storage: LocalStorage, src: Path, tmp_path: Path
    ) -> None:
        storage.put(src, "a/b.mp4")
        with pytest.raises(ServiceUnavailable):
            storage.put(tmp_path / "missing.mp4", "a/b.mp4")
        assert [p.name for p in storage.path("a").iterdir()] == ["b.mp4"]

    def test_delete_removes_empty_folders(self, storage: LocalStorage, src: Path) -> None:
        storage.put(src, "t1/attempt-1.mp4")
        storage.delete("t1/attempt-1.mp4")
        assert not (storage.root / "t1").exists()
        assert storage.root.exists()


class TestMemory:
    def test_link_names_key_and_expiry(self, clock: FakeClock) -> None:
        expires = clock() + timedelta(hours=24)
        link = MemoryStorage().url("t/attempt-1.mp4", expires_at=expires)
        assert link == f"memory://results/t/attempt-1.mp4?expires={int(expires.timestamp())}"

    def test_reading_an_absent_key_is_not_found(self) -> None:
        with pytest.raises(NotFound):
            MemoryStorage().read("t/nothing.mp4")


class TestSignedLinks:
    def test_link_opens_until_expiry_then_is_gone(
        self, storage: LocalStorage, src: Path, clock: FakeClock
    ) -> None:
        storage.put(src, "t/attempt-1.mp4")
        url = storage.url("t/attempt-1.mp4", expires_at=clock() + timedelta(hours=24))
        assert url.startswith("https://upres.example/v1/files/")
        token = _token(url)
        assert set(token) <= set(
            "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_."
        )
        assert storage.open_signed(token).path == storage.path("t/attempt-1.mp4")
        assert storage.open_signed(token).download_name == "t.mp4"
        clock.advance(24 * 3600 - 1)
        assert storage.open_signed(token).path.exists()
        clock.advance(1)
        with pytest.raises(ResultExpired):
            storage.open_signed(token)

    def test_forged_or_altered_tokens_are_not_found(
        self, storage: LocalStorage, src: Path, clock: FakeClock, tmp_path: Path
    ) -> None:
        storage.put(src, "t/attempt-1.mp4")
        token = storage.token("t/attempt-1.mp4", expires_at=clock() + timedelta(hours=1))
        payload, mac = token.split(".")
        other = LocalStorage(storage.root, base_url=BASE, secret=b"x" * 32, clock=clock)
        longer = storage.token("t/attempt-1.mp4", expires_at=clock() + timedelta(days=99))
        for bad in [
            "",
            "garbage",
            payload,
            f"{payload}.{mac[:-2]}AA",
            f"{longer.split('.')[0]}.{mac}",
            other.token("t/attempt-1.mp4", expires_at=clock() + timedelta(hours=1)),
            "!!!.???",
        ]:
            with pytest.raises(NotFound) as info:
                storage.open_signed(bad)
            assert not isinstance(info.value, ResultExpired)

    def test_valid_token_for_a_missing_file_is_not_found(
        self, storage: LocalStorage, clock: FakeClock
    ) -> None:
        token = storage.token("t/nothing.mp4", expires_at=clock() + timedelta(hours=1))
        with pytest.raises(NotFound):
            storage.open_signed(token)


class TestSecret:
    def test_created_once_private_and_reused(self, tmp_path: Path) -> None:
        first = load_or_create_secret(tmp_path / "data")
        assert len(first) == 32
        mode = stat.S_IMODE((tmp_path / "data" / SECRET_FILE).stat().st_mode)
        assert mode == 0o600
        assert load_or_create_secret(tmp_path / "data") == first
        assert load_or_create_secret(tmp_path / "other") != first

    def test_concurrent_first_use_agrees(self, tmp_path: Path) -> None:
        results: list[bytes] = []
        threads = [
            threading.Thread(target=lambda: results.append(load_or_create_secret(tmp_path)))
            for _ in range(8)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert len(set(results)) == 1
        assert [p.name for p in tmp_path.iterdir()] == [SECRET_FILE]


@pytest.fixture
def store(tmp_path: Path, clock: FakeClock) -> Iterator[SqlTaskStore]:
    db = sqlite_store(tmp_path / "db.sqlite", clock)
    yield db
    db.close()


def test_janitor_deletes_only_expired_results(
    store: SqlTaskStore, storage: LocalStorage, clock: FakeClock, src: Path
) -> None:
    old = completed_task(store, clock, key="old/attempt-1.mp4", ttl_s=60)
    new = completed_task(store, clock, key="new/attempt-1.mp4", ttl_s=3600)
    storage.put(src, "old/attempt-1.mp4")
    storage.put(src, "new/attempt-1.mp4")
    janitor = Janitor(store, storage, clock)
    assert janitor.run_once() == 0
    clock.advance(60)
    assert janitor.run_once() == 1
    assert not storage.exists("old/attempt-1.mp4")
    assert storage.exists("new/attempt-1.mp4")
    assert store.get_task(old).result_key is None
    assert store.get_task(new).result_key == "new/attempt-1.mp4"
    assert janitor.run_once() == 0


class _StopAfterWaits(threading.Event):
    """A stop event the loop sets itself on its ``waits``-th wait, which returns at
    once: the loop makes that many passes without any time passing."""

    def __init__(self, waits: int) -> None:
        super().__init__()
        self.timeouts: list[float | None] = []
        self._waits = waits

    def wait(self, timeout: float | None = None) -> bool:
        self.timeouts.append(timeout)
        if len(self.timeouts) >= self._waits:
            self.set()
        return self.is_set()


def test_janitor_loop_runs_until_stopped(
    store: SqlTaskStore, storage: LocalStorage, clock: FakeClock, src: Path
) -> None:
    completed_task(store, clock, key="t/attempt-1.mp4", ttl_s=0)
    storage.put(src, "t/attempt-1.mp4")
    stop = _StopAfterWaits(2)
    Janitor(store, storage, clock).run_forever(stop, interval_s=30)
    assert stop.timeouts == [30, 30]  # a pass, a wait, a pass, a wait: then stopped
    assert not storage.exists("t/attempt-1.mp4")


class TestS3:
    @pytest.fixture
    def s3(self, clock: FakeClock, monkeypatch: pytest.MonkeyPatch) -> Iterator[S3Storage]:
        for name, value in {
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_DEFAULT_REGION": "us-east-1",
        }.items():
            monkeypatch.setenv(name, value)
        from moto import mock_aws  # noqa: PLC0415 (slow to import; only these tests use it)

        with mock_aws():
            client = s3_client(endpoint_url=None, region="us-east-1")
            boto3.client("s3", region_name="us-east-1").create_bucket(Bucket="results")
            yield S3Storage(client, bucket="results", prefix="upres/", clock=clock)

    def test_put_exists_delete(self, s3: S3Storage, src: Path) -> None:
        assert not s3.exists("t/attempt-1.mp4")
        s3.put(src, "t/attempt-1.mp4")
        assert s3.exists("t/attempt-1.mp4")
        body = boto3.client("s3", region_name="us-east-1").get_object(
            Bucket="results", Key="upres/t/attempt-1.mp4"
        )["Body"]
        assert body.read() == src.read_bytes()
        s3.delete("t/attempt-1.mp4")
        assert not s3.exists("t/attempt-1.mp4")

    def test_presigned_url_expires_with_the_result(self, s3: S3Storage, clock: FakeClock) -> None:
        query = parse_qs(
            urlsplit(s3.url("t/a.mp4", expires_at=clock() + timedelta(hours=24))).query
        )
        assert query["X-Amz-Expires"] == [str(24 * 3600)]
        assert query["response-content-disposition"] == ['attachment; filename="t.mp4"']
        far = s3.url("t/a.mp4", expires_at=clock() + timedelta(days=30))
        assert parse_qs(urlsplit(far).query)["X-Amz-Expires"] == [str(7 * 24 * 3600)]
        assert "/upres/t/a.mp4" in urlsplit(far).path

    def test_missing_bucket_is_service_unavailable(self, s3: S3Storage, src: Path) -> None:
        other = S3Storage(s3_client(endpoint_url=None, region="us-east-1"), bucket="nope")
        with pytest.raises(ServiceUnavailable):
            other.put(src, "t/a.mp4")
        with pytest.raises(ServiceUnavailable):
            other.exists("t/a.mp4")


def test_build_storage_picks_the_backend(tmp_path: Path) -> None:
    local = build_storage(Settings(data_dir=tmp_path, public_base_url="https://x.example"))
    assert isinstance(local, LocalStorage)
    assert local.url("t/a.mp4", expires_at=START).startswith("https://x.example/v1/files/")
    with pytest.raises(ServiceUnavailable, match="S3_BUCKET"):
        build_storage(Settings(data_dir=tmp_path, storage_backend="s3"))
