"""A task's frame rate and slow motion, through the real HTTP server: model_params.frame_rate
and .slowmo checked against the limits and the probed source's rate, priced per second of
output, stored and shown; a client that sends neither is served exactly as before."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.stores import FakeClock, new_task
from tests.unit.api_harness import Api, running_api
from upres.api.schemas import TaskRenderer
from upres.db.task_store import SqlTaskStore
from upres.domain.accounts import Account
from upres.domain.framerate import UNCHANGED, FrameRateRequest
from upres.domain.pricing import Pricing
from upres.domain.tasks import API_MODEL, Factor, chosen_frame_rate
from upres.jobs.publish import Publisher
from upres.services.tasks import Submission
from upres.storage.local import LocalStorage

VIDEO = "https://videos.example.com/clip.mp4"
GENERATE = "/v1/videos/generations"
ESTIMATE = "/v1/videos/generations/estimate"
# FixedProber's video: 8.2 s at 12 fps, billed as 9 started seconds; 16 credits a second
# at 2x, and 4 credits a second of output for the interpolation (the default price).
SECONDS, PER_SECOND_2X, INTERPOLATION = 9, 16.0, 4.0


@pytest.fixture
def api(tmp_path: Path) -> Iterator[Api]:
    with running_api(tmp_path) as running:
        yield running


def body(**params: object) -> dict[str, Any]:
    return {"model": API_MODEL, "video_urls": [VIDEO], "model_params": params}


def balance(api: Api) -> float:
    return api.store.get_account(api.owner.key.account_id).balance


def test_a_request_without_frame_rate_or_slowmo_is_served_as_before(api: Api) -> None:
    with api.client() as client:
        bare = client.post(GENERATE, json=body()).json()
        nulls = client.post(GENERATE, json=body(frame_rate=None, slowmo=None)).json()
        estimate = client.post(ESTIMATE, json=body()).json()

    for task in (bare, nulls):
        assert "frame_rate" not in task["task_info"]
        assert "slowmo" not in task["task_info"]
        assert task["usage"]["credits_reserved"] == SECONDS * PER_SECOND_2X
    assert "frame_rate" not in estimate
    assert "slowmo" not in estimate
    stored = api.store.get_task(bare["id"])
    assert (stored.frame_rate, stored.slowmo) == (None, None)
    assert stored.frame_rate_request == UNCHANGED


@pytest.mark.parametrize(
    ("params", "param", "message"),
    [
        ({"frame_rate": 10}, "frame_rate", "below the source's 12 fps"),
        ({"frame_rate": 10}, "frame_rate", "valid: from 12 to 120 fps"),
        ({"frame_rate": 5, "slowmo": 2}, "frame_rate", "valid: from 6 to 120 fps"),
        ({"frame_rate": 121}, "frame_rate", "at most 120 fps"),
        ({"frame_rate": 0}, "frame_rate", "above 0 and at most 120"),
        ({"frame_rate": -30.0}, "frame_rate", "above 0 and at most 120"),
        ({"frame_rate": "60"}, "frame_rate", "valid number"),
        ({"slowmo": 3}, "slowmo", "slowmo must be one of 1, 2, 4, 8, got 3"),
        ({"slowmo": 16}, "slowmo", "one of 1, 2, 4, 8"),
        ({"slowmo": 2.5}, "slowmo", "valid integer"),
        ({"slowmo": True}, "slowmo", "valid integer"),
    ],
    ids=[
        "below-source",
        "below-source-range",
        "below-source-slowed",
        "above-120",
        "zero",
        "negative",
        "string",
        "slowmo-3",
        "slowmo-16",
        "slowmo-fraction",
        "slowmo-bool",
    ],
)
@pytest.mark.parametrize("path", [GENERATE, ESTIMATE])
def test_a_rate_or_slowmo_out_of_range_is_refused_naming_the_range(
    api: Api, path: str, params: dict[str, object], param: str, message: str
) -> None:
    with api.client() as client:
        response = client.post(path, json=body(**params))
        listed = client.get("/v1/tasks").json()["data"]

    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert (error["code"], error["param"]) == ("invalid_parameter", f"model_params.{param}")
    assert message in error["message"]
    assert listed == []
    assert balance(api) == 10_000.0


def test_a_chosen_rate_is_priced_per_second_of_output_and_stored(api: Api) -> None:
    with api.client() as client:
        estimate = client.post(ESTIMATE, json=body(frame_rate=59.94)).json()
        plain = client.post(ESTIMATE, json=body()).json()
        created = client.post(GENERATE, json=body(frame_rate=59.94)).json()
        read = client.get(f"/v1/tasks/{created['id']}").json()
        (listed,) = client.get("/v1/tasks").json()["data"]

    price = SECONDS * PER_SECOND_2X + SECONDS * INTERPOLATION
    assert (estimate["frame_rate"], estimate["credits"]) == (59.94, price)
    assert "slowmo" not in estimate
    # Five times the frames: the estimate counts the output's.
    assert estimate["estimated_time"] > plain["estimated_time"]
    assert created["usage"]["credits_reserved"] == price
    assert balance(api) == 10_000.0 - price
    assert created["task_info"]["frame_rate"] == read["task_info"]["frame_rate"] == 59.94
    assert listed["task_info"]["frame_rate"] == 59.94
    assert "slowmo" not in read["task_info"]
    stored = api.store.get_task(created["id"])
    assert stored.frame_rate_request == FrameRateRequest(fps=chosen_frame_rate(59.94, 1).fps)
    assert stored.frame_rate_request.fps is not None
    assert stored.frame_rate_request.fps.denominator == 1001  # the NTSC rate, exactly


def test_slow_motion_pays_for_its_longer_output(api: Api) -> None:
    with api.client() as client:
        estimate = client.post(ESTIMATE, json=body(slowmo=2)).json()
        created = client.post(GENERATE, json=body(slowmo=4, frame_rate=24)).json()

    # 8.2 s slowed 2x is 16.4 s of output: 17 started seconds of interpolation.
    assert estimate["credits"] == SECONDS * PER_SECOND_2X + 17 * INTERPOLATION
    assert estimate["slowmo"] == 2
    assert created["usage"]["credits_reserved"] == SECONDS * PER_SECOND_2X + 33 * INTERPOLATION
    info = created["task_info"]
    assert (info["frame_rate"], info["slowmo"]) == (24, 4)


def test_get_models_shows_the_interpolation_price(tmp_path: Path) -> None:
    with running_api(tmp_path, interpolation_price_per_second=2.5) as api, api.client() as client:
        (card,) = client.get("/v1/models").json()["data"]
    assert card["pricing"]["interpolation_credits_per_second"] == 2.5
    (rife,) = card["interpolation_networks"]
    assert (rife["id"], rife["license"], rife["credits_per_second"]) == ("rife-v3.9", "MIT", 2.5)
    assert "rife-v3.9" not in {network["id"] for network in card["networks"]}


def test_the_frame_rate_is_part_of_an_idempotent_request(api: Api) -> None:
    headers = {"Idempotency-Key": "order-9"}
    with api.client() as client:
        first = client.post(GENERATE, json=body(frame_rate=60), headers=headers)
        replay = client.post(GENERATE, json=body(frame_rate=60), headers=headers)
        other = client.post(GENERATE, json=body(frame_rate=60, slowmo=2), headers=headers)

    assert replay.json()["id"] == first.json()["id"]
    assert other.status_code == 409


def test_a_request_without_a_frame_rate_hashes_as_before() -> None:
    submission = Submission(
        model=API_MODEL, video_urls=[VIDEO], factor=Factor.X2, callback_url=None
    )
    before = {"model": API_MODEL, "video_urls": [VIDEO], "factor": 2, "callback_url": None}
    expected = hashlib.sha256(json.dumps(before, sort_keys=True).encode()).hexdigest()
    assert submission.fingerprint() == expected
    assert dataclasses.replace(submission, slowmo=2).fingerprint() != expected
    assert dataclasses.replace(submission, frame_rate=60.0).fingerprint() != expected


def test_the_openapi_documents_the_two_params(api: Api) -> None:
    schema = httpx.get(f"{api.base_url}/openapi.json").json()
    params = schema["components"]["schemas"]["ModelParams"]["properties"]
    assert params["frame_rate"]["type"] == ["number", "null"]  # null is taken as omitted
    assert params["frame_rate"]["maximum"] == 120
    assert params["slowmo"]["enum"] == [1, 2, 4, 8, None]
    info = schema["components"]["schemas"]["VideoTaskInfo"]["properties"]
    assert info["frame_rate"]["description"].startswith("upres extension")
    assert info["slowmo"]["description"].startswith("upres extension")


def test_the_charge_counts_the_interpolation_as_the_reservation_did(
    store: SqlTaskStore, clock: FakeClock, account: Account, tmp_path: Path
) -> None:
    pricing = Pricing(interpolation_per_second=3.0)
    slowed = chosen_frame_rate(30.0, 2)
    # 2 s of input at 2x, slowed 2x: 4 s of output to interpolate.
    expected = pricing.credits(duration_s=2.0, factor=Factor.X2, network=None, frame_rate=slowed)
    assert expected == 2 * 16.0 + 4 * 3.0
    chosen = dataclasses.replace(
        new_task(account, clock, reserved=100.0), frame_rate=30.0, slowmo=2
    )
    store.create_task(chosen)
    claim = store.claim(worker_id="w", lease_s=30)
    storage = LocalStorage(tmp_path / "results", base_url="http://127.0.0.1", secret=b"s")
    output = tmp_path / "out.mp4"
    output.write_bytes(b"not really a video: the publisher only stores it")
    render = TaskRenderer(storage.url)
    publisher = Publisher(
        store=store,
        storage=storage,
        render=render,
        pricing=pricing,
        result_ttl_s=60,
        default_model=None,
        clock=clock,
    )

    task = publisher.publish(claim, output, 2.0, codec="h264", notes=(), mpix_per_s=None)

    assert task.credits_charged == expected
    assert store.get_account(account.id).balance == 1000 - expected
