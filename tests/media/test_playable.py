"""The small H.264 copy of a result browsers cannot play (HEVC): made, and
linked from the task list, by the codec the result has, not by the setting."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tests.clips import make_clip, write_text_file
from tests.stores import FakeClock, new_task, render_body
from tests.unit.api_harness import RESULTS_BASE, Api, running_api
from upres.db.task_store import SqlTaskStore
from upres.domain.accounts import Account
from upres.domain.media import MediaLimits, VideoCodec, needs_playable_copy
from upres.domain.pricing import Pricing
from upres.domain.storage_keys import playable_key, result_key
from upres.domain.tasks import API_MODEL, Task
from upres.errors import EncodeError
from upres.inputs.probe import probe
from upres.jobs.publish import Publisher
from upres.pipeline.playable import playable_copy
from upres.storage import MemoryStorage


def test_an_hevc_result_gets_a_smaller_h264_copy_of_every_frame(tmp_path: Path) -> None:
    source = make_clip(tmp_path / "hevc.mp4", width=200, height=100, frames=12, codec="libx265")
    copy = tmp_path / "copy.mp4"

    playable_copy(source, copy, max_width=100)

    info = probe(copy, limits=MediaLimits())
    assert (info.codec, info.pix_fmt, info.width, info.height) == ("h264", "yuv420p", 100, 50)
    assert info.frame_count == 12
    assert info.has_audio is False


def test_a_copy_that_cannot_be_made_leaves_nothing(tmp_path: Path) -> None:
    copy = tmp_path / "copy.mp4"
    with pytest.raises(EncodeError, match="playable copy"):
        playable_copy(write_text_file(tmp_path / "x.mp4"), copy)
    assert not copy.exists()


def test_the_copy_lives_beside_the_result() -> None:
    key = "task-unified-1-abcdefgh/attempt-2.mp4"
    assert playable_key(key) == "task-unified-1-abcdefgh/attempt-2.h264-preview.mp4"


@pytest.mark.parametrize(("codec", "needed"), [("h264", False), ("av1", False), ("h265", True)])
def test_only_a_result_in_a_codec_browsers_cannot_play_needs_a_copy(
    codec: VideoCodec, needed: bool
) -> None:
    assert needs_playable_copy(codec) is needed


def _publish(
    tmp_path: Path,
    store: SqlTaskStore,
    storage: MemoryStorage,
    *,
    clock: FakeClock,
    account: Account,
    codec: VideoCodec,
) -> Task:
    """Publish a real result written in ``codec`` for a new task, as a worker does."""
    encoder = {"h264": "libx264", "h265": "libx265"}[codec]
    output = make_clip(tmp_path / "output.mp4", frames=4, audio=False, codec=encoder)
    store.create_task(new_task(account, clock))
    claim = store.claim(worker_id="w1", lease_s=30)
    assert claim is not None
    publisher = Publisher(
        store=store,
        storage=storage,
        render=render_body,
        pricing=Pricing(),
        result_ttl_s=60,
        default_model=None,
    )
    return publisher.publish(claim, output, 1.0, codec=codec, notes=(), mpix_per_s=None)


@pytest.mark.parametrize(("codec", "copied"), [("h264", False), ("h265", True)])
def test_a_result_gets_a_playable_copy_by_the_codec_it_was_written_in(
    tmp_path: Path,
    store: SqlTaskStore,
    clock: FakeClock,
    account: Account,
    codec: VideoCodec,
    copied: bool,
) -> None:
    storage = MemoryStorage()
    task = _publish(tmp_path, store, storage, clock=clock, account=account, codec=codec)
    assert task.result_key is not None
    assert storage.exists(playable_key(task.result_key)) is copied
    assert store.get_task(task.id).result_codec == codec


def test_the_task_list_links_a_playable_copy_only_for_an_hevc_result(tmp_path: Path) -> None:
    # The app's settings leave the codec unset, as by default.
    with running_api(tmp_path) as api:
        h264, h265 = (_completed(api, codec) for codec in ("h264", "h265"))
        with api.client() as client:
            listed = {item["id"]: item for item in client.get("/v1/tasks").json()["data"]}
    assert "playable_url" not in listed[h264]
    assert listed[h265]["playable_url"].startswith(f"{RESULTS_BASE}/v1/files/")


def _completed(api: Api, codec: VideoCodec) -> str:
    """A task of ``api``'s owner that a worker completed with a result in ``codec``."""
    with api.client() as client:
        body = {"model": API_MODEL, "video_urls": ["https://videos.example.com/clip.mp4"]}
        task_id: str = client.post("/v1/videos/generations", json=body).json()["id"]
    claim = api.store.claim(worker_id="w1", lease_s=30)
    assert claim is not None
    api.store.complete(
        claim,
        result_key=result_key(task_id, 1),
        result_expires_at=datetime.now(UTC) + timedelta(hours=1),
        actual_duration_s=8.2,
        credits_charged=144.0,
        callback_body=api.services.renderer,
        result_codec=codec,
    )
    return task_id
