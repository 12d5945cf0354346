"""TaskService: validation exactly per the spec, probing, pricing, reservation, get, cancel."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field, replace
from pathlib import Path

import pytest

from tests.clips import probed_info
from tests.hostile import UNSENDABLE_URLS
from tests.stores import new_task, render_body
from upres.domain.media import VideoInfo
from upres.domain.pricing import Pricing
from upres.domain.tasks import Factor, TaskStatus, is_well_formed_task_id
from upres.errors import (
    AddressNotAllowed,
    FetchError,
    IdempotencyConflict,
    InsufficientQuota,
    InvalidRequest,
    InvalidTaskId,
    ModelAccessDenied,
    TaskNotCancellable,
    TaskNotFound,
    UnknownDuration,
)
from upres.inputs.netpolicy import AddressPolicy, IPAddress
from upres.inputs.urlpolicy import UrlPolicy
from upres.jobs.publish import Publisher
from upres.services.estimates import ThroughputEstimator
from upres.services.keys import KeyService
from upres.services.tasks import Submission, TaskService
from upres.storage.local import LocalStorage

VIDEO = "https://videos.example.com/clip.mp4"
HOOK = "https://hooks.example.com/done"


@dataclass
class FakeProber:
    info: VideoInfo = field(default_factory=probed_info)
    error: Exception | None = None
    probed: list[str] = field(default_factory=list)

    def probe_url(self, url: str, *, whole_body: Path | None = None) -> VideoInfo:
        self.probed.append(url)
        if self.error is not None:
            raise self.error
        return self.info


def fake_dns(host: str, port: int) -> list[IPAddress]:
    """No real DNS in unit tests: hosts named internal are on the LAN, others public."""
    return [ipaddress.ip_address("10.0.0.7" if "internal" in host else "93.184.216.34")]


@pytest.fixture
def prober() -> FakeProber:
    return FakeProber()


def task_service(store, prober, clock, *, default_model: str | None = None) -> TaskService:
    return TaskService(
        store=store,
        prober=prober,
        pricing=Pricing(),
        urls=UrlPolicy(AddressPolicy(resolver=fake_dns)),
        callback_body=render_body,
        clock=clock,
        default_model=default_model,
    )


@pytest.fixture
def service(store, prober, clock) -> TaskService:
    return task_service(store, prober, clock)


@pytest.fixture
def key(store):
    return KeyService(store).create(credits=1000).key


def submission(**overrides) -> Submission:
    fields = {"model": "topaz-video-upscale", "video_urls": [VIDEO], "factor": Factor.X2}
    fields["callback_url"] = None
    fields.update(overrides)
    return Submission(**fields)


def test_submit_probes_prices_and_reserves(service, store, key, prober, clock):
    task = service.submit(key=key, submission=submission(factor=Factor.X4, callback_url=HOOK))

    assert is_well_formed_task_id(task.id)
    assert task.id.startswith(f"task-unified-{int(clock.now.timestamp())}-")
    assert task.status is TaskStatus.PENDING
    assert task.video_duration_s == 9.2
    assert task.credits_reserved == 10 * 28  # 9.2 s rounds up to 10 s at the 4x rate
    assert task.callback_url == HOOK
    assert task.user_group == "default"
    assert task.estimated_time_s > 0
    assert prober.probed == [VIDEO]
    assert store.get_account(key.account_id).balance == 1000 - 280


def test_estimate_follows_measured_throughput(service, store, key):
    first = service.submit(key=key, submission=submission())
    store.record_throughput(Factor.X2, first.network, 500.0)
    fast = service.submit(key=key, submission=submission()).estimated_time_s

    assert fast < first.estimated_time_s
    output_mpix = 640 * 360 * 4 * 276 / 1e6
    assert fast == pytest.approx(5 + output_mpix / 500, abs=1)


def test_a_slow_networks_estimate_is_longer_once_both_are_measured(service, store, key):
    store.record_throughput(Factor.X2, "realesrgan-x4plus", 5.0)
    store.record_throughput(Factor.X2, "realesr-animevideov3", 50.0)

    slow = service.submit(key=key, submission=submission(network="realesrgan-x4plus"))
    fast = service.submit(key=key, submission=submission(network="realesr-animevideov3"))

    output_mpix = 640 * 360 * 4 * 276 / 1e6
    assert slow.estimated_time_s == pytest.approx(5 + output_mpix / 5, abs=1)
    assert fast.estimated_time_s == pytest.approx(5 + output_mpix / 50, abs=1)
    assert slow.estimated_time_s > 5 * fast.estimated_time_s


def test_an_estimate_reads_what_workers_measured_on_the_operators_default(
    store, prober, clock, key, tmp_path
):
    """A task from before tasks chose a network runs the operator's default; the
    worker records its speed under that network and a submission naming none is
    estimated from it (both sides resolve with ``task_network``)."""
    default = "realesr-animevideov3"
    publisher = Publisher(
        store=store,
        storage=LocalStorage(tmp_path, base_url="http://127.0.0.1", secret=b"s"),
        render=render_body,
        pricing=Pricing(),
        result_ttl_s=60,
        default_model=default,
    )
    account = store.get_account(key.account_id)
    older = store.create_task(replace(new_task(account, clock), network=None))
    publisher.record_speed(older, 50.0)
    service = task_service(store, prober, clock, default_model=default)

    task = service.submit(key=key, submission=submission())

    assert store.throughput(Factor.X2, default) == 50.0
    assert task.network == default
    assert task.estimated_time_s == pytest.approx(5 + 640 * 360 * 4 * 276 / 1e6 / 50, abs=1)


def test_estimator_falls_back_to_duration_times_fps():
    class Unmeasured:
        def throughput(self, factor, network):
            return None

    estimator = ThroughputEstimator(Unmeasured(), default_mpix_per_s=1.0, overhead_s=0)
    unknown_frames = probed_info(duration_s=2.0, frames=None)

    assert estimator.estimate(unknown_frames, Factor.ENHANCE, "realesrgan-x4plus") == (
        pytest.approx(640 * 360 * 60 / 1e6, abs=1)
    )


@pytest.mark.parametrize(
    ("overrides", "error", "message"),
    [
        ({"model": "other-model"}, InvalidRequest, "model"),
        ({"video_urls": []}, InvalidRequest, "video_urls is required and must not be empty"),
        ({"video_urls": [VIDEO, VIDEO]}, InvalidRequest, "Only 1 video"),
        ({"video_urls": ["ftp://x.example.com/a.mp4"]}, InvalidRequest, "http or https"),
        ({"video_urls": ["not a url"]}, InvalidRequest, "http or https"),
        ({"callback_url": "http://hooks.example.com/x"}, InvalidRequest, "https"),
        ({"callback_url": "https://h.example.com/" + "a" * 2048}, InvalidRequest, "2048"),
        ({"callback_url": "https://internal.example/x"}, AddressNotAllowed, "not allowed"),
        ({"callback_url": "https://010.010.010.010/cb"}, InvalidRequest, "not a valid URL"),
        ({"callback_url": "https://a..b/cb"}, InvalidRequest, "invalid host name"),
        *[({"video_urls": [url]}, InvalidRequest, "video_urls") for url in UNSENDABLE_URLS],
    ],
)
def test_invalid_submissions_are_refused_before_probing(
    service, store, key, prober, overrides, error, message
):
    with pytest.raises(error, match=message) as raised:
        service.submit(key=key, submission=submission(**overrides))

    assert raised.value.code == "invalid_parameter"
    assert prober.probed == []
    assert store.queue_depth() == 0


def test_empty_video_urls_carry_the_spec_message_and_param(service, key):
    with pytest.raises(InvalidRequest) as raised:
        service.submit(key=key, submission=submission(video_urls=[]))

    assert raised.value.message == (
        "video_urls is required and must not be empty for topaz-video-upscale"
    )
    assert raised.value.param == "video_urls"


def test_key_without_the_model_is_denied(service, store):
    key = KeyService(store).create(credits=100, models=("something-else",)).key

    with pytest.raises(ModelAccessDenied) as raised:
        service.submit(key=key, submission=submission())

    assert raised.value.message == "Token does not have access to model: topaz-video-upscale"


@pytest.mark.parametrize(
    "error", [FetchError("unreachable"), UnknownDuration("no duration")], ids=["fetch", "duration"]
)
def test_probe_errors_propagate_as_video_probe_failed(service, store, key, prober, error):
    prober.error = error

    with pytest.raises(type(error)) as raised:
        service.submit(key=key, submission=submission())

    assert raised.value.code == "video_probe_failed"
    assert store.get_account(key.account_id).balance == 1000


def test_a_zero_duration_is_a_probe_failure(service, key, prober):
    prober.info = probed_info(duration_s=0.0)

    with pytest.raises(UnknownDuration, match="Failed to detect video duration"):
        service.submit(key=key, submission=submission())


def test_insufficient_quota_is_checked_before_fetching(service, store, prober):
    broke = KeyService(store).create(credits=5).key

    with pytest.raises(InsufficientQuota):
        service.submit(key=broke, submission=submission())

    assert prober.probed == []


def test_insufficient_quota_for_the_whole_video(service, store):
    short = KeyService(store).create(credits=100).key  # covers 6 of 10 seconds

    with pytest.raises(InsufficientQuota):
        service.submit(key=short, submission=submission())

    assert store.get_account(short.account_id).balance == 100


def test_get_and_cancel_check_id_and_owner(service, store, key):
    task = service.submit(key=key, submission=submission(callback_url=HOOK))
    stranger = KeyService(store).create(credits=0).key

    with pytest.raises(InvalidTaskId):
        service.get(key=key, task_id="abc")
    with pytest.raises(TaskNotFound):
        service.get(key=stranger, task_id=task.id)
    with pytest.raises(TaskNotFound):
        service.cancel(key=stranger, task_id=task.id)
    assert service.get(key=key, task_id=task.id).id == task.id

    cancelled = service.cancel(key=key, task_id=task.id)

    assert cancelled.status is TaskStatus.CANCELLED
    assert store.get_account(key.account_id).balance == 1000
    assert store.outbox_for_task(task.id)[0].url == HOOK
    with pytest.raises(TaskNotCancellable):
        service.cancel(key=key, task_id=task.id)


def test_idempotent_submission_replays_and_detects_reuse(service, store, key, prober):
    first = service.submit_idempotent(key=key, submission=submission(), idempotency_key="k1")
    again = service.submit_idempotent(key=key, submission=submission(), idempotency_key="k1")

    assert (first.replayed, again.replayed) == (False, True)
    assert again.task.id == first.task.id
    assert len(prober.probed) == 1
    assert store.get_account(key.account_id).balance == 1000 - 160
    with pytest.raises(IdempotencyConflict):
        service.submit_idempotent(
            key=key, submission=submission(factor=Factor.X4), idempotency_key="k1"
        )
    plain = service.submit_idempotent(key=key, submission=submission(), idempotency_key=None)
    assert plain.task.id != first.task.id


def test_an_empty_idempotency_key_is_no_key(service, store, key):
    first = service.submit_idempotent(key=key, submission=submission(), idempotency_key="")
    other = service.submit_idempotent(
        key=key, submission=submission(factor=Factor.X4), idempotency_key=""
    )

    assert (first.replayed, other.replayed) == (False, False)
    assert first.task.id != other.task.id
    assert (
        store.find_idempotent(account_id=key.account_id, key="", since=first.task.created_at)
        is None
    )
