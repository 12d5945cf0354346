"""The S3 backend against a real S3 server: SeaweedFS (``weed mini``) on loopback,
with signatures checked. Every storage path upres has: results, their signed
links (and Range reads through them, as a player seeks), previews, uploads,
a chunked task's stored input (read in ranges by its chunks) and chunk
outputs, expiry and the janitor.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import boto3
import httpx
import pytest
from testkit.chunk_reads import frame_times, join_parts, run_chunks
from testkit.seaweedfs import S3Server, seaweedfs

from tests.clips import make_clip
from tests.stores import FakeClock, completed_task, sqlite_store
from tests.stores import worker_settings as fast_worker
from upres.clock import utc_now
from upres.config import Settings
from upres.domain.storage_keys import chunk_source_key, result_key, upload_key
from upres.domain.tasks import TaskStatus
from upres.errors import NotFound, ServiceUnavailable
from upres.pipeline.chunks import cut_spans
from upres.storage import Janitor, build_storage
from upres.storage.s3 import S3Storage, s3_client

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    with seaweedfs(tmp_path_factory.mktemp("seaweedfs")) as running:
        yield running


@pytest.fixture
def credentials(server: S3Server, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", server.access_key)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", server.secret_key)


@pytest.fixture
def bucket(server: S3Server, credentials: None) -> str:
    return server.new_bucket()


@pytest.fixture
def storage(server: S3Server, bucket: str) -> S3Storage:
    client = s3_client(endpoint_url=server.endpoint_url, region=server.region)
    return S3Storage(client, bucket=bucket, prefix="upres/")


@pytest.fixture
def src(tmp_path: Path) -> Path:
    path = tmp_path / "src.mp4"
    path.write_bytes(bytes(range(256)) * 64)
    return path


def test_put_copy_exists_delete(storage: S3Storage, src: Path, tmp_path: Path) -> None:
    key = result_key("task-unified-1", 1)
    assert not storage.exists(key)
    storage.put(src, key)
    assert storage.exists(key)
    storage.copy_to(key, tmp_path / "back.mp4")
    assert (tmp_path / "back.mp4").read_bytes() == src.read_bytes()
    storage.delete(key)
    assert not storage.exists(key)
    storage.delete(key)  # absent: nothing happens


def test_an_absent_key_is_not_found(storage: S3Storage, tmp_path: Path) -> None:
    with pytest.raises(NotFound):
        storage.copy_to("t/none.mp4", tmp_path / "x.mp4")
    assert not (tmp_path / "x.mp4").exists()


def test_signed_link_downloads_with_its_name_and_serves_ranges(
    storage: S3Storage, src: Path
) -> None:
    key = result_key("task-unified-2", 1)
    storage.put(src, key)
    url = storage.url(key, expires_at=utc_now() + timedelta(hours=24))

    whole = httpx.get(url)
    assert whole.status_code == 200
    assert whole.content == src.read_bytes()
    assert 'filename="task-unified-2.mp4"' in whole.headers["content-disposition"]
    part = httpx.get(url, headers={"Range": "bytes=100-199"})
    assert part.status_code == 206
    assert part.content == src.read_bytes()[100:200]


def test_a_forged_or_unsigned_link_is_refused(
    storage: S3Storage, src: Path, server: S3Server, bucket: str
) -> None:
    key = result_key("task-unified-3", 1)
    storage.put(src, key)
    url = storage.url(key, expires_at=utc_now() + timedelta(hours=1))
    assert httpx.get(url.replace("X-Amz-Signature=", "X-Amz-Signature=0")).status_code == 403
    assert httpx.get(f"{server.endpoint_url}/{bucket}/upres/{key}").status_code == 403


def test_a_link_stops_working_when_it_expires(storage: S3Storage, src: Path) -> None:
    key = result_key("task-unified-4", 1)
    storage.put(src, key)
    url = storage.url(key, expires_at=utc_now() + timedelta(seconds=1))
    assert httpx.get(url).status_code == 200
    # The server checks X-Amz-Date + X-Amz-Expires against its own clock.
    with httpx.Client() as client:
        for _ in range(50):
            if client.get(url).status_code == 403:
                return
            time.sleep(0.2)
    raise AssertionError("the link still worked 10 s after it expired")


def test_a_refusing_or_stopped_server_is_service_unavailable(
    server: S3Server, bucket: str, src: Path
) -> None:
    # A session of its own: boto3's default one keeps the credentials it read first.
    wrong = boto3.session.Session(
        aws_access_key_id=server.access_key, aws_secret_access_key="not-the-secret"
    ).client("s3", endpoint_url=server.endpoint_url, region_name=server.region)
    refused = S3Storage(wrong, bucket=bucket)
    with pytest.raises(ServiceUnavailable):
        refused.put(src, "t/a.mp4")
    down = S3Storage(
        s3_client(endpoint_url="http://127.0.0.1:9", region=server.region), bucket=bucket
    )
    with pytest.raises(ServiceUnavailable):
        down.exists("t/a.mp4")


def test_the_janitor_deletes_expired_results_from_the_bucket(
    storage: S3Storage, src: Path, tmp_path: Path
) -> None:
    clock = FakeClock()
    store = sqlite_store(tmp_path / "db.sqlite", clock)
    try:
        old = completed_task(store, clock, ttl_s=60)
        new = completed_task(store, clock, ttl_s=3600)
        for task_id in (old, new):
            storage.put(src, result_key(task_id, 1))
        janitor = Janitor(store, storage, clock)
        assert janitor.run_once() == 0
        clock.advance(60)
        assert janitor.run_once() == 1
        assert not storage.exists(result_key(old, 1))
        assert storage.exists(result_key(new, 1))
        assert store.get_task(old).result_key is None
    finally:
        store.close()


def test_a_chunked_task_keeps_every_object_in_the_bucket(
    server: S3Server, bucket: str, tmp_path: Path
) -> None:
    """Upload, stored input, chunk outputs, preview and result all go through
    the real server; once published, only the result is left."""
    from tests.media.test_chunked_tasks import (  # noqa: PLC0415
        FPS,
        KEYFRAME_EVERY_HALF_SECOND,
        frame_times,
        submit,
        work_until_ended,
    )
    from upres.wiring import open_store  # noqa: PLC0415
    from upres.worker_wiring import worker_from_settings  # noqa: PLC0415

    settings = worker_settings(tmp_path, server, bucket, chunk_seconds=0.5)
    source = make_clip(
        tmp_path / "in.mp4", frames=24, fps=FPS, encoder_options=KEYFRAME_EVERY_HALF_SECOND
    )
    store = open_store(settings)
    try:
        task = submit(store, settings, source, FakeClock())
        with worker_from_settings(settings, worker_id="w1") as loop:
            assert loop.run_once()
            assert len(store.task_chunks(task.id)) == 4
            done = work_until_ended(loop, store, task.id)
    finally:
        store.close()

    assert done.status is TaskStatus.COMPLETED, done.error
    storage = build_storage(settings)
    result = tmp_path / "result.mp4"
    storage.copy_to(done.result_key, result)
    assert frame_times(result) == pytest.approx(frame_times(source), abs=1e-3)
    assert not storage.exists(chunk_source_key(task.id))
    names = _object_names(server, bucket)
    assert done.result_key in names
    assert not [name for name in names if "/chunks/" in name]
    assert upload_key(task.input_url.removeprefix("upres-upload://")) in names


def test_a_chunk_reads_only_its_ranges_of_the_stored_input(
    storage: S3Storage, tmp_path: Path
) -> None:
    """Ranged GETs against the real server: each of eight chunks reads well under
    half of the stored input, and the parts still join frame-exact."""
    from tests.media.test_ranged_chunks import (  # noqa: PLC0415
        CHUNK_S,
        CLIP,
        FPS,
        FRAMES,
    )

    source = make_clip(
        tmp_path / "in.mp4", width=128, height=96, frames=FRAMES, fps=FPS, encoder_options=CLIP
    )
    key = chunk_source_key("task-unified-1")
    storage.put(source, key)
    spans = cut_spans(source, chunk_seconds=CHUNK_S)

    reads = run_chunks(storage, key, spans, tmp_path)

    shares = [read.bytes_read / source.stat().st_size for read in reads]
    assert len(shares) == 8
    assert all(0 < share < 0.4 for share in shares), shares
    joined = join_parts(source, reads, tmp_path)
    assert frame_times(joined) == pytest.approx(frame_times(source), abs=1e-3)


def worker_settings(tmp_path: Path, server: S3Server, bucket: str, **changes: Any) -> Settings:
    """A fast CPU worker (``tests.stores.worker_settings``) storing in ``bucket`` on ``server``."""
    return fast_worker(
        tmp_path / "data",
        storage_backend="s3",
        s3_bucket=bucket,
        s3_endpoint_url=server.endpoint_url,
        s3_region=server.region,
        **changes,
    )


def _object_names(server: S3Server, bucket: str) -> set[str]:
    client = boto3.client("s3", endpoint_url=server.endpoint_url, region_name=server.region)
    listed = client.list_objects_v2(Bucket=bucket)
    return {item["Key"] for item in listed.get("Contents", [])}
