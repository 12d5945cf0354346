"""Submitting, querying and cancelling tasks through the real HTTP server."""

from __future__ import annotations

import json
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tests.unit.api_harness import Api, running_api
from upres.domain.tasks import API_MODEL, Factor, is_well_formed_task_id
from upres.models.registry import default_model_for

VIDEO = "https://videos.example.com/clip.mp4"


@pytest.fixture
def api(tmp_path: Path) -> Iterator[Api]:
    with running_api(tmp_path) as running:
        yield running


def submit(api: Api, **fields: object) -> dict[str, object]:
    body = {"model": API_MODEL, "video_urls": [VIDEO], **fields}
    with api.client() as client:
        response = client.post("/v1/videos/generations", json=body)
    assert response.status_code == 200, response.text
    return response.json()


def test_submit_answers_the_pending_task_object(api: Api) -> None:
    with api.client() as client:
        response = client.post(
            "/v1/videos/generations",
            json={"model": API_MODEL, "video_urls": [VIDEO], "unknown_field": {"x": 1}},
        )
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    assert response.headers["x-request-id"]
    task = response.json()
    assert is_well_formed_task_id(task["id"])
    assert task["object"] == "video.generation.task"
    assert task["status"] == "pending"
    assert task["progress"] == 0
    assert task["type"] == "video"
    assert task["model"] == API_MODEL
    assert task["task_info"]["can_cancel"] is True
    assert task["task_info"]["video_duration"] == 9
    assert task["task_info"]["estimated_time"] > 0
    assert task["usage"] == {
        "billing_rule": "per_second",
        "credits_reserved": 9 * 16.0,
        "user_group": "default",
    }
    assert "results" not in task
    assert "error" not in task
    assert api.store.get_account(api.owner.key.account_id).balance == 10_000.0 - 144.0


@pytest.mark.parametrize(
    ("factor", "reserved"),
    [("4", 9 * 28.0), (4, 9 * 28.0), ("1", 9 * 16.0), (1.0, 9 * 16.0), ("3", 144.0), (None, 144.0)],
)
def test_upscale_factor_is_lenient(api: Api, factor: object, reserved: float) -> None:
    task = submit(api, model_params={"upscale_factor": factor})
    assert task["usage"]["credits_reserved"] == reserved  # type: ignore[index]


def test_get_returns_the_same_object_as_submit(api: Api) -> None:
    created = submit(api, callback_url="https://hooks.example.com/done")
    with api.client() as client:
        response = client.get(f"/v1/tasks/{created['id']}")
    assert response.status_code == 200
    assert response.json() == created


def test_cancel_ends_task_refunds_and_callback_body_equals_get(api: Api) -> None:
    created = submit(api, callback_url="https://hooks.example.com/done")
    with api.client() as client:
        cancelled = client.post(f"/v1/tasks/{created['id']}/cancel")
        fetched = client.get(f"/v1/tasks/{created['id']}")
        again = client.post(f"/v1/tasks/{created['id']}/cancel")
    assert cancelled.status_code == 200
    body = cancelled.json()
    assert body["status"] == "cancelled"
    assert body["task_info"]["can_cancel"] is False
    assert body["error"] == {
        "code": "request_cancelled",
        "message": body["error"]["message"],
        "type": "task_error",
    }
    assert api.store.get_account(api.owner.key.account_id).balance == 10_000.0
    (callback,) = api.store.outbox_for_task(str(created["id"]))
    assert callback.url == "https://hooks.example.com/done"
    assert callback.body.encode() == fetched.content
    assert json.loads(callback.body) == body
    assert again.status_code == 409
    assert again.json()["error"]["code"] == "task_not_cancellable"


def test_idempotency_key_replays_first_response(api: Api) -> None:
    body = {"model": API_MODEL, "video_urls": [VIDEO]}
    headers = {"Idempotency-Key": "order-42"}
    with api.client() as client:
        first = client.post("/v1/videos/generations", json=body, headers=headers)
        replay = client.post("/v1/videos/generations", json=body, headers=headers)
        other = client.post(
            "/v1/videos/generations",
            json={**body, "model_params": {"upscale_factor": "4"}},
            headers=headers,
        )
    assert first.status_code == replay.status_code == 200
    assert "idempotent-replayed" not in first.headers
    assert replay.headers["idempotent-replayed"] == "true"
    assert replay.json()["id"] == first.json()["id"]
    assert other.status_code == 409
    assert other.json()["error"]["code"] == "idempotency_conflict"
    assert api.store.get_account(api.owner.key.account_id).balance == 10_000.0 - 144.0


def test_models_lists_factors_prices_and_limits(api: Api) -> None:
    with api.client() as client:
        response = client.get("/v1/models")
    assert response.status_code == 200
    listing = response.json()
    assert listing["object"] == "list"
    (model,) = listing["data"]
    assert model["id"] == API_MODEL
    assert model["factors"] == ["1", "2", "4"]
    assert model["default_factor"] == "2"
    assert model["pricing"]["credits_per_second"] == {"1": 16.0, "2": 16.0, "4": 28.0}
    assert model["limits"]["max_videos_per_request"] == 1
    # upres extension: the networks a task may choose, their prices and runtimes.
    networks = {network["id"]: network for network in model["networks"]}
    assert networks["realesr-animevideov3"] == {
        "id": "realesr-animevideov3",
        "description": "Real-ESRGAN animevideo v3: anime video, fast (SRVGGNetCompact)",
        "factors": ["1", "2", "4"],
        "default_for": [],
        "denoise_levels": [0],
        "price_multiplier": 1.0,
        "credits_per_second": {"1": 16.0, "2": 16.0, "4": 28.0},
        "runtimes": ["pytorch", "ncnn"],
        "cpu_runtime": "ncnn",
    }
    assert networks["realesrgan-x4plus"]["runtimes"] == ["pytorch", "ncnn"]
    assert networks[default_model_for(Factor.X2).id]["default_for"] == ["1", "2", "4"]


def test_credits_reports_the_account_balance(api: Api) -> None:
    submit(api)
    with api.client() as client:
        response = client.get("/v1/credits")
    assert response.status_code == 200
    assert response.json() == {
        "object": "credits",
        "remaining_credits": 10_000.0 - 144.0,
        "user_group": "default",
    }


def test_concurrent_submissions_cannot_overspend(tmp_path: Path) -> None:
    """50 submissions at once against a balance that covers 10: 10 accepted, 40 x 402.

    The submission gate's bounds are set above 50 here: this is the credit race,
    and with the default per-key bound (8 in flight) some would get 429 instead."""
    with running_api(tmp_path, submit_max_per_key=64, submit_max_pending=64) as api:
        _overspend(api)


def _overspend(api: Api) -> None:
    funded = api.keys.create(credits=10 * 144.0)
    body = {"model": API_MODEL, "video_urls": [VIDEO]}

    def post(_: int) -> int:
        with api.client(funded.secret) as client:
            return client.post("/v1/videos/generations", json=body).status_code

    with ThreadPoolExecutor(max_workers=50) as pool:
        statuses = list(pool.map(post, range(50)))
    assert sorted(statuses) == [200] * 10 + [402] * 40
    assert api.store.get_account(funded.key.account_id).balance == 0.0


def test_null_optional_fields_are_taken_as_omitted(api: Api) -> None:
    """Generated clients send null for what they omit."""
    task = submit(api, model_params=None, callback_url=None)
    stored = api.store.get_task(str(task["id"]))
    assert int(stored.factor) == 2
    assert stored.callback_url is None
    assert task["usage"]["credits_reserved"] == 9 * 16.0  # type: ignore[index]


def test_an_empty_idempotency_key_is_ignored(api: Api) -> None:
    body = {"model": API_MODEL, "video_urls": [VIDEO]}
    with api.client() as client:
        first = client.post("/v1/videos/generations", json=body, headers={"Idempotency-Key": ""})
        other = client.post(
            "/v1/videos/generations",
            json=body | {"model_params": {"upscale_factor": "4"}},
            headers={"Idempotency-Key": ""},
        )
    assert (first.status_code, other.status_code) == (200, 200), other.text
    assert first.json()["id"] != other.json()["id"]
    assert "idempotent-replayed" not in other.headers
