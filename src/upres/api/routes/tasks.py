"""GET /v1/tasks/{task_id} and the cancel extension."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Response

from upres.api.deps import AuthenticatedKey, ServicesDep, TaskServiceDep, store_read
from upres.api.openapi import error_responses
from upres.api.routes._task_response import task_response
from upres.api.schemas import TaskPublic

router = APIRouter(tags=["Task Management"])

TASK_PATH = "/v1/tasks/{task_id}"

TaskId = Annotated[
    str,
    Path(
        description="Task ID, of the form `task-unified-<unix>-<8 chars>`",
        examples=["task-unified-1757169743-7cvnl5zw"],
        # Documented only: a malformed id is refused by the task service with
        # 400 invalid_task_id (param task_id), not as a generic validation error.
        json_schema_extra={"pattern": "^task-unified-"},
    ),
]


@router.get(
    TASK_PATH,
    operation_id="getTaskDetail",
    summary="Query task status",
    description="The task; `results` appear once completed, `error` once failed or cancelled.",
    response_model=TaskPublic,
    responses=error_responses(400, 401, 404, 429, bad_request=("invalid_task_id",)),
)
async def get_task(task_id: TaskId, key: AuthenticatedKey, services: ServicesDep) -> Response:
    # Polls with a remembered key are answered before routing (api/readpath.py);
    # the rest come here. Few declared dependencies: FastAPI checks each per request.
    task = await store_read(services, services.tasks.get, key=key, task_id=task_id)
    return task_response(services.renderer, task)


@router.post(
    "/v1/tasks/{task_id}/cancel",
    operation_id="cancelTask",
    summary="Cancel a pending or processing task (upres extension)",
    description="Cancels now and refunds the reservation; the callback says `cancelled`.",
    response_model=TaskPublic,
    responses=error_responses(400, 401, 404, 409, 429, bad_request=("invalid_task_id",)),
)
def cancel_task(
    task_id: TaskId, key: AuthenticatedKey, tasks: TaskServiceDep, services: ServicesDep
) -> Response:
    return task_response(services.renderer, tasks.cancel(key=key, task_id=task_id))
