"""An input whose server ignores Range is downloaded once: the submission's probe
reads it whole and keeps it as the task's upload, for the worker to read.

Real parts: a loopback HTTP server without Range support counting its requests,
the real prober, upload service, local storage and SQLite store. The worker's
side (it reads the kept copy and fetches nothing) runs end to end in
tests/integration/test_service_e2e.py.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tests.clips import make_clip
from tests.servers import LocalHttpServer, Route
from tests.stores import FakeClock, render_body, sqlite_store
from tests.unit.api_harness import upload_service
from upres.config import Settings
from upres.db.task_store import SqlTaskStore
from upres.domain.accounts import ApiKey
from upres.domain.media import MediaLimits
from upres.domain.pricing import Pricing
from upres.domain.storage_keys import upload_key
from upres.domain.tasks import API_MODEL, Factor
from upres.domain.uploads import kept_input_id
from upres.errors import InsufficientQuota
from upres.inputs.netpolicy import AddressPolicy
from upres.inputs.remote import RemoteProber
from upres.inputs.urlpolicy import UrlPolicy
from upres.services.keys import KeyService
from upres.services.tasks import Submission, TaskService
from upres.storage.janitor import Janitor
from upres.storage.local import LocalStorage

LAN = AddressPolicy(True)
TTL_S = 3600


@pytest.fixture(scope="module")
def body(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    clip = tmp_path_factory.mktemp("kept") / "clip.mp4"
    return make_clip(clip, width=64, height=48, frames=48, fps=24).read_bytes()  # 2 s


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(datetime.now(UTC))


@pytest.fixture
def store(tmp_path: Path, clock: FakeClock) -> Iterator[SqlTaskStore]:
    store = sqlite_store(tmp_path / "upres.db", clock)
    yield store
    store.close()


@pytest.fixture
def storage(tmp_path: Path) -> LocalStorage:
    return LocalStorage(tmp_path / "results", base_url="http://upres.test", secret=b"s" * 32)


@pytest.fixture
def service(store: SqlTaskStore, storage: LocalStorage, clock: FakeClock) -> TaskService:
    uploads = upload_service(store, storage, settings=Settings(result_ttl_s=TTL_S), clock=clock)
    return TaskService(
        store=store,
        prober=RemoteProber(LAN, 10.0, MediaLimits()),
        pricing=Pricing(),
        urls=UrlPolicy(LAN),
        callback_body=render_body,
        clock=clock,
        uploads=uploads,
    )


def _key(store: SqlTaskStore, credits: float = 1000.0) -> ApiKey:
    return KeyService(store).create(credits=credits).key


def _submission(url: str) -> Submission:
    return Submission(model=API_MODEL, video_urls=[url], factor=Factor.X2, callback_url=None)


def _stored(storage: LocalStorage) -> list[Path]:
    return sorted(path for path in storage.root.rglob("*") if path.is_file())


def test_a_whole_download_is_kept_once_and_expires_with_the_uploads(
    http_server: LocalHttpServer,
    body: bytes,
    service: TaskService,
    store: SqlTaskStore,
    storage: LocalStorage,
    clock: FakeClock,
) -> None:
    http_server.routes["/v.mp4"] = Route(body=body, ranges=False)
    key = _key(store)

    task = service.submit(key=key, submission=_submission(http_server.url("/v.mp4")))

    assert [path for path, _ in http_server.requests] == ["/v.mp4"]
    assert http_server.bytes_sent["/v.mp4"] == len(body)
    kept = store.get_upload(kept_input_id(task.id), account_id=key.account_id)
    assert kept.size_bytes == len(body)
    assert kept.expires_at == clock() + timedelta(seconds=TTL_S)
    copy = storage.root.parent / "copy.mp4"
    storage.copy_to(upload_key(kept.id), copy)
    assert copy.read_bytes() == body
    assert task.input_url == http_server.url("/v.mp4")  # the client's URL, as it sent it

    clock.advance(TTL_S)
    assert Janitor(store, storage, clock, uploads=store).run_once() == 1
    assert _stored(storage) == []
    assert store.expired_uploads(now=clock()) == []


def test_nothing_is_kept_from_a_server_that_reads_in_ranges(
    http_server: LocalHttpServer,
    body: bytes,
    service: TaskService,
    store: SqlTaskStore,
    storage: LocalStorage,
) -> None:
    http_server.routes["/v.mp4"] = Route(body=body)
    service.submit(key=_key(store), submission=_submission(http_server.url("/v.mp4")))
    assert _stored(storage) == []


def test_an_estimate_or_a_refused_submission_keeps_nothing(
    http_server: LocalHttpServer,
    body: bytes,
    service: TaskService,
    store: SqlTaskStore,
    storage: LocalStorage,
) -> None:
    http_server.routes["/v.mp4"] = Route(body=body, ranges=False)
    url = http_server.url("/v.mp4")
    service.estimate(key=_key(store), submission=_submission(url))
    poor = _key(store, credits=20.0)  # one second's worth: probed, then refused
    with pytest.raises(InsufficientQuota):
        service.submit(key=poor, submission=_submission(url))

    assert len(http_server.requests) == 2
    assert _stored(storage) == []
    assert store.expired_uploads(now=datetime.now(UTC) + timedelta(days=365)) == []
    assert list((storage.root.parent / "upload-scratch").glob("*")) == []
