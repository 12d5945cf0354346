"""TaskRunner on a real store, storage and engine: what it settles when a task completes."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from pathlib import Path

from tests.clips import make_clip
from tests.stores import FakeClock, new_task, render_body
from upres.db.task_store import SqlTaskStore
from upres.domain.accounts import Account
from upres.domain.media import EncodeSettings, MediaLimits
from upres.domain.pricing import Pricing
from upres.domain.storage_keys import playable_key, upload_key
from upres.domain.tasks import TaskStatus
from upres.domain.uploads import new_upload_id, upload_url
from upres.inputs.netpolicy import AddressPolicy
from upres.jobs.input_cache import FetchLimits, InputCache
from upres.jobs.publish import Publisher
from upres.jobs.runner import TaskRunner
from upres.pipeline.upscale import InterpolationUpscaler
from upres.storage import MemoryStorage


def test_a_completed_task_expires_by_the_runners_clock_and_is_charged_within_its_reservation(
    tmp_path: Path, store: SqlTaskStore, clock: FakeClock, account: Account
) -> None:
    storage = MemoryStorage()
    upload_id = new_upload_id()
    clip = make_clip(tmp_path / "in.mp4", frames=6, audio=False)
    storage.put(clip, upload_key(upload_id))
    # Reserved below the price of what the video turns out to be (16 credits a second).
    task = replace(new_task(account, clock, reserved=1.0), input_url=upload_url(upload_id))
    store.create_task(task)
    claim = store.claim(worker_id="w1", lease_s=30)
    assert claim is not None
    render = render_body
    encode = EncodeSettings(preset="ultrafast")
    runner = TaskRunner(
        store=store,
        storage=storage,
        inputs=InputCache(
            storage=storage,
            policy=AddressPolicy(False),
            limits=FetchLimits(max_bytes=1 << 20, timeout_s=5),
            directory=tmp_path / "work" / "inputs",
        ),
        upscaler_for=lambda factor, **_: InterpolationUpscaler(factor),
        frame_rate_for=lambda task: None,
        render=render,
        publisher=Publisher(
            store=store,
            storage=storage,
            render=render,
            pricing=Pricing(),
            result_ttl_s=3600,
            default_model="realesr-animevideov3",
            clock=clock,
        ),
        work_dir=tmp_path / "work",
        limits=MediaLimits(),
        encode=encode,
        chunk_encode=encode,
        heartbeat_s=60,
        chunk_seconds=60,
    )

    done = runner.run(claim)

    assert done is not None
    assert done.status is TaskStatus.COMPLETED
    assert done.result_expires_at == clock.now + timedelta(seconds=3600)
    assert done.credits_charged == 1.0
    assert store.get_account(account.id).balance == 999.0
    assert done.result_key is not None
    assert storage.exists(done.result_key)
    # No codec chosen and an 8-bit source: an H.264 result, which browsers play as it is.
    assert done.result_codec == "h264"
    assert not storage.exists(playable_key(done.result_key))
    # The task named no network: its speed is recorded as the operator's default's.
    assert [m.network for m in store.measured_throughputs()] == ["realesr-animevideov3"]
