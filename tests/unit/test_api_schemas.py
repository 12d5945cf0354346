"""The public task object: what appears when, and that it matches its own schema."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import jsonschema_rs
import pytest

from upres.api.schemas import TaskPublic, TaskRenderer, VideoGenerationRequest
from upres.domain.tasks import API_MODEL, Factor, Task, TaskError, TaskStatus

CREATED = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)


def make_task(**changes: object) -> Task:
    task = Task(
        id="task-unified-1767323045-abcdefgh",
        account_id="acct",
        model=API_MODEL,
        status=TaskStatus.PENDING,
        progress=0,
        factor=Factor.X2,
        input_url="https://example.com/a.mp4",
        callback_url=None,
        video_duration_s=8.2,
        credits_reserved=144.0,
        credits_charged=None,
        estimated_time_s=42,
        user_group="default",
        created_at=CREATED,
        updated_at=CREATED,
        finished_at=None,
        result_key=None,
        result_expires_at=None,
        error=None,
        attempts=0,
        cancel_requested=False,
    )
    return replace(task, **changes)


def link(key: str, *, expires_at: datetime) -> str:
    return f"https://upres.test/v1/files/{key}.{int(expires_at.timestamp())}"


RENDER = TaskRenderer(link)
SCHEMA = TaskPublic.model_json_schema()


def rendered(task: Task) -> dict[str, Any]:
    body = json.loads(RENDER(task))
    jsonschema_rs.validate(SCHEMA, body)
    return body


def test_pending_task_has_no_results_or_error() -> None:
    body = rendered(make_task())
    assert body == {
        "created": int(CREATED.timestamp()),
        "id": "task-unified-1767323045-abcdefgh",
        "model": API_MODEL,
        "object": "video.generation.task",
        "progress": 0,
        "status": "pending",
        "task_info": {"can_cancel": True, "estimated_time": 42, "video_duration": 9},
        "type": "video",
        "usage": {"billing_rule": "per_second", "credits_reserved": 144.0, "user_group": "default"},
    }


def test_completed_task_links_its_result_freshly() -> None:
    expires = CREATED + timedelta(days=1)
    task = make_task(
        status=TaskStatus.COMPLETED, progress=97, result_key="out/x.mp4", result_expires_at=expires
    )
    body = rendered(task)
    assert body["results"] == [link("out/x.mp4", expires_at=expires)]
    assert body["progress"] == 100
    assert body["task_info"] == {"can_cancel": False, "estimated_time": 0, "video_duration": 9}
    assert "error" not in body


def test_a_completed_task_reports_its_notes_in_task_info() -> None:
    expires = CREATED + timedelta(days=1)
    notes = ("the source is HDR10 (PQ) 10-bit: writing h265 10-bit instead of h264",)
    done = make_task(
        status=TaskStatus.COMPLETED, result_key="k.mp4", result_expires_at=expires, notes=notes
    )
    assert rendered(done)["task_info"]["notes"] == list(notes)
    assert "notes" not in rendered(replace(done, notes=()))["task_info"]
    assert "notes" not in rendered(replace(done, status=TaskStatus.PROCESSING))["task_info"]


@pytest.mark.parametrize(
    ("status", "error", "code"),
    [
        (
            TaskStatus.FAILED,
            TaskError(code="video_decode_failed", message="bad"),
            "video_decode_failed",
        ),
        (TaskStatus.FAILED, None, "unknown_error"),
        (TaskStatus.CANCELLED, None, "request_cancelled"),
    ],
)
def test_ended_without_result_carries_task_error(
    status: TaskStatus, error: TaskError | None, code: str
) -> None:
    body = rendered(make_task(status=status, error=error))
    assert body["error"]["code"] == code
    assert body["error"]["type"] == "task_error"
    assert "results" not in body
    assert body["task_info"]["can_cancel"] is False


def test_request_model_ignores_unknown_fields_and_keeps_factor_raw() -> None:
    request = VideoGenerationRequest.model_validate(
        {"model": API_MODEL, "video_urls": ["u"], "model_params": {"upscale_factor": 4}, "x": 1}
    )
    assert request.model_params is not None
    assert request.model_params.upscale_factor == 4
    schema = VideoGenerationRequest.model_json_schema()
    assert schema["required"] == ["model", "video_urls"]
    assert schema["properties"]["video_urls"]["maxItems"] == 1
