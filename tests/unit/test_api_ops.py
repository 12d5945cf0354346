"""The operational surface: /openapi.json, /docs, /metrics, /healthz, request ids."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.unit.api_harness import Api, running_api
from upres.api.deps import Services
from upres.api.metrics import gpu_memory
from upres.db.task_store import SqlTaskStore
from upres.domain.tasks import API_MODEL, Factor
from upres.errors import DatabaseUnavailable, ServiceUnavailable


@pytest.fixture
def api(tmp_path: Path) -> Iterator[Api]:
    with running_api(tmp_path) as running:
        yield running


@pytest.fixture
def openapi(api: Api) -> dict[str, Any]:
    with httpx.Client(base_url=api.base_url) as client:
        response = client.get("/openapi.json")
    assert response.status_code == 200
    return response.json()


def test_openapi_lists_every_endpoint_with_its_method(openapi: dict[str, Any]) -> None:
    operations = {(path, method) for path, item in openapi["paths"].items() for method in item}
    assert operations == {
        ("/v1/videos/generations", "post"),
        ("/v1/videos/generations/estimate", "post"),
        ("/v1/uploads", "post"),
        ("/v1/uploads/{upload_id}", "get"),
        ("/v1/tasks", "get"),
        ("/v1/tasks/{task_id}", "get"),
        ("/v1/tasks/{task_id}/cancel", "post"),
        ("/v1/files/{token}", "get"),
        ("/v1/files/{token}", "head"),
        ("/v1/models", "get"),
        ("/v1/credits", "get"),
        ("/healthz", "get"),
        ("/metrics", "get"),
    }


def test_openapi_create_operation_matches_the_spec(openapi: dict[str, Any]) -> None:
    create = openapi["paths"]["/v1/videos/generations"]["post"]
    assert create["operationId"] == "createVideoGeneration"
    examples = create["requestBody"]["content"]["application/json"]["examples"]
    assert set(examples) == {
        "basic_2x_upscale",
        "upscale_4x",
        "upscale_1x_enhance",
        "with_callback",
    }
    assert examples["upscale_4x"]["value"]["model_params"] == {"upscale_factor": "4"}
    assert create["security"] == [{"bearerAuth": []}]
    responses = create["responses"]
    assert {"200", "400", "401", "402", "403", "429", "500"} <= set(responses)
    assert "422" not in responses
    error_ref = {"$ref": "#/components/schemas/ErrorResponse"}
    for status in ("400", "401", "402", "403", "429", "500"):
        assert responses[status]["content"]["application/json"]["schema"] == error_ref
    assert set(responses["429"]["headers"]) == {
        "Retry-After",
        "X-RateLimit-Limit",
        "X-RateLimit-Remaining",
        "X-RateLimit-Reset",
    }
    bad = responses["400"]["content"]["application/json"]["examples"]
    assert {"missing_video", "probe_failed"} <= set(bad)
    request = openapi["components"]["schemas"]["VideoGenerationRequest"]
    assert request["required"] == ["model", "video_urls"]
    assert request["properties"]["model"]["enum"] == [API_MODEL]
    factor = openapi["components"]["schemas"]["ModelParams"]["properties"]["upscale_factor"]
    assert factor["enum"] == ["1", "2", "4"]
    assert factor["default"] == "2"


def test_openapi_says_the_optional_request_fields_may_be_null_as_the_service_takes_them(
    api: Api, openapi: dict[str, Any]
) -> None:
    fields = openapi["components"]["schemas"]["VideoGenerationRequest"]["properties"]
    assert fields["callback_url"]["type"] == ["string", "null"]
    assert fields["callback_url"]["format"] == "uri"
    assert fields["model_params"]["anyOf"] == [
        {"$ref": "#/components/schemas/ModelParams"},
        {"type": "null"},
    ]
    body = {
        "model": API_MODEL,
        "video_urls": ["https://videos.example.com/clip.mp4"],
        "model_params": None,
        "callback_url": None,
    }
    with api.client() as client:
        response = client.post("/v1/videos/generations", json=body)
    assert response.status_code == 200, response.text
    assert api.store.get_task(response.json()["id"]).callback_url is None


def test_openapi_security_and_task_schema(openapi: dict[str, Any]) -> None:
    schemes = openapi["components"]["securitySchemes"]
    assert schemes["bearerAuth"] == {
        "type": "http",
        "scheme": "bearer",
        "description": schemes["bearerAuth"]["description"],
    }
    assert openapi["security"] == [{"bearerAuth": []}]
    assert openapi["paths"]["/healthz"]["get"]["security"] == []
    schemas = openapi["components"]["schemas"]
    assert "HTTPValidationError" not in schemas
    assert {"VideoGenerationRequest", "VideoTaskInfo", "VideoUsage", "ErrorResponse"} <= set(
        schemas
    )
    task = schemas["VideoGenerationResponse"]
    assert set(task["required"]) == {
        "created",
        "id",
        "model",
        "progress",
        "status",
        "task_info",
        "usage",
    }
    assert set(task["properties"]) >= {"results", "error", "object", "type"}
    get = openapi["paths"]["/v1/tasks/{task_id}"]["get"]
    assert (
        get["responses"]["400"]["content"]["application/json"]["examples"]["invalid_task_id"][
            "value"
        ]["error"]["param"]
        == "task_id"
    )


def test_docs_page_is_served(api: Api) -> None:
    with httpx.Client(base_url=api.base_url) as client:
        response = client.get("/docs")
    assert response.status_code == 200
    assert "swagger" in response.text.lower()


def test_request_id_is_generated_or_echoed(api: Api) -> None:
    with httpx.Client(base_url=api.base_url) as client:
        generated = client.get("/healthz")
        echoed = client.get("/healthz", headers={"x-request-id": "client-id-1"})
        unsafe = client.get("/healthz", headers={"x-request-id": "bad id\twith tab"})
    assert generated.headers["x-request-id"].startswith("req_")
    assert echoed.headers["x-request-id"] == "client-id-1"
    assert unsafe.headers["x-request-id"].startswith("req_")


def test_metrics_count_requests_and_read_the_store(api: Api) -> None:
    with api.client() as client:
        client.post("/v1/videos/generations", json={"model": API_MODEL, "video_urls": []})
        client.post(
            "/v1/videos/generations",
            json={"model": API_MODEL, "video_urls": ["https://v.example.com/a.mp4"]},
        )
        client.get("/v1/tasks/task-unified-1-abcdefgh")
        response = client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    samples = parsed(response.text)
    requests = "upres_http_requests_total"
    generations = {"route": "/v1/videos/generations", "method": "POST"}
    assert samples[requests, frozenset({**generations, "status": "400"}.items())] == 1.0
    assert samples[requests, frozenset({**generations, "status": "200"}.items())] == 1.0
    task = {"route": "/v1/tasks/{task_id}", "method": "GET", "status": "404"}
    assert samples[requests, frozenset(task.items())] == 1.0
    assert samples["upres_tasks", frozenset({"status": "pending"}.items())] == 1.0
    assert samples["upres_queue_depth", frozenset()] == 1.0
    assert samples["upres_chunks", frozenset({"status": "pending"}.items())] == 0.0
    assert samples["upres_tasks_submitted_total", frozenset({"factor": "2"}.items())] == 1.0
    assert samples["upres_credits_reserved_total", frozenset()] == 144.0
    assert samples["upres_credits_captured_total", frozenset()] == 0.0
    assert samples["upres_oldest_pending_seconds", frozenset({"queue": "tasks"}.items())] >= 0.0
    assert samples["upres_oldest_pending_seconds", frozenset({"queue": "chunks"}.items())] == 0.0
    assert any(name == "upres_http_request_duration_seconds_bucket" for name, _ in samples)


def test_metrics_show_each_busy_workers_frames_and_megapixels_per_second(api: Api) -> None:
    with api.client() as client:
        client.post(
            "/v1/videos/generations",
            json={"model": API_MODEL, "video_urls": ["https://v.example.com/a.mp4"]},
        )
        claim = api.store.claim(worker_id="w1", lease_s=30)
        assert claim is not None
        api.store.heartbeat(claim, progress=10, estimated_time_s=5, fps=4.0, frame_mpx=2.0736)
        samples = parsed(client.get("/metrics").text)
    worker = frozenset({"worker": "w1"}.items())
    assert samples["upres_worker_frames_per_second", worker] == 4.0
    assert samples["upres_worker_megapixels_per_second", worker] == pytest.approx(8.2944)


def test_metrics_show_the_measured_throughput_by_factor_and_network(api: Api) -> None:
    api.store.record_throughput(Factor.X2, "realesr-animevideov3", 40.0)
    api.store.record_throughput(Factor.X2, "realesrgan-x4plus", 2.5)
    with api.client() as client:
        samples = parsed(client.get("/metrics").text)
    speeds = {
        dict(labels)["network"]: value
        for (name, labels), value in samples.items()
        if name == "upres_throughput_megapixels_per_second" and dict(labels)["factor"] == "2"
    }
    assert speeds == {"realesr-animevideov3": 40.0, "realesrgan-x4plus": 2.5}


class NoAccounts(SqlTaskStore):
    """A store whose database fails every account read."""

    def get_account(self, account_id: str) -> Any:
        raise DatabaseUnavailable("database error: OperationalError")


def test_metrics_count_requests_a_failing_dependency_answered_503(tmp_path: Path) -> None:
    def breaking(services: Services) -> Services:
        store = services.store
        assert isinstance(store, SqlTaskStore)
        return replace(services, store=NoAccounts(store.engine))

    with running_api(tmp_path, adjust=breaking) as api, api.client() as client:
        assert client.get("/v1/credits").status_code == 503
        assert client.get("/v1/credits").status_code == 503  # the read path's answer too
        samples = parsed(client.get("/metrics").text)
    database = frozenset({"dependency": "database"}.items())
    assert samples["upres_dependency_errors_total", database] == 2.0


def test_gpu_memory_is_read_from_nvidia_smi_lines() -> None:
    family = gpu_memory("0, 1024, 81559\n1, 0, 81559\nnot a gpu\n")
    values = {tuple(sample.labels.values()): sample.value for sample in family.samples}
    assert values[("0", "used")] == 1024 * 1024 * 1024
    assert values[("1", "total")] == 81559 * 1024 * 1024
    assert len(values) == 4


def parsed(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def test_healthz_ok_when_database_and_worker_are(api: Api) -> None:
    with httpx.Client(base_url=api.base_url) as client:
        response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "checks": {"database": True, "worker": True}}


class DownStore(SqlTaskStore):
    """A store whose database stopped answering."""

    def ping(self) -> None:
        raise ServiceUnavailable("database is down")


@pytest.mark.parametrize("broken", ["database", "worker"])
def test_healthz_is_503_when_a_check_fails(tmp_path: Path, broken: str) -> None:
    def breaking(services: Services) -> Services:
        if broken == "worker":
            return replace(services, worker_alive=lambda: False)
        store = services.store
        assert isinstance(store, SqlTaskStore)
        return replace(services, store=DownStore(store.engine))

    with running_api(tmp_path, adjust=breaking) as api, httpx.Client(base_url=api.base_url) as c:
        response = c.get("/healthz")
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "unhealthy"
    assert body["checks"][broken] is False


def test_metrics_without_a_token_answer_loopback_clients_only(api: Api) -> None:
    # Behind a reverse proxy on this host, the client is the forwarded address.
    forwarded = {"X-Forwarded-For": "203.0.113.9"}
    with httpx.Client(base_url=api.base_url) as client:
        local = client.get("/metrics")
        remote = client.get("/metrics", headers=forwarded)
    assert local.status_code == 200
    assert remote.status_code == 401
    assert remote.json()["error"]["code"] == "unauthorized"
    assert "UPRES_METRICS_TOKEN" in remote.json()["error"]["message"]


def test_metrics_with_a_token_need_it_from_everywhere(tmp_path: Path) -> None:
    with (
        running_api(tmp_path, metrics_token="s3cret-token") as api,
        httpx.Client(base_url=api.base_url) as client,
    ):
        missing = client.get("/metrics")
        wrong = client.get("/metrics", headers={"Authorization": "Bearer nope"})
        right = client.get("/metrics", headers={"Authorization": "Bearer s3cret-token"})
    assert (missing.status_code, wrong.status_code, right.status_code) == (401, 401, 200)
    assert "upres_credits_captured_total" in right.text
    assert "credits" not in wrong.text
