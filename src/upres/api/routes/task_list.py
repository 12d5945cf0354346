"""GET /v1/tasks: the key's newest tasks (upres extension; GET /v1/tasks/{id} is unchanged)."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated

from fastapi import APIRouter, Query

from upres.api.deps import AuthenticatedKey, ServicesDep, TaskServiceDep
from upres.api.extension_schemas import TaskList, TaskListItem
from upres.api.openapi import error_responses
from upres.clock import utc_now
from upres.domain.accounts import ApiKey
from upres.domain.media import needs_playable_copy
from upres.domain.storage_keys import playable_key, preview_key
from upres.domain.tasks import Task, TaskStatus
from upres.domain.uploads import is_upload_url
from upres.errors import FetchError

PREVIEW_LINK_TTL = timedelta(minutes=10)

router = APIRouter(tags=["Task Management"])


def _preview_url(services: ServicesDep, task: Task) -> str | None:
    if task.status is not TaskStatus.PROCESSING or services.file_links is None:
        return None
    return services.file_links(preview_key(task.id), expires_at=utc_now() + PREVIEW_LINK_TTL)


def _playable_url(services: ServicesDep, task: Task) -> str | None:
    """A link to the playable copy of a completed result whose codec needs one."""
    if task.result_codec is None or not needs_playable_copy(task.result_codec):
        return None
    if services.file_links is None or task.result_key is None or task.result_expires_at is None:
        return None
    return services.file_links(playable_key(task.result_key), expires_at=task.result_expires_at)


def _source_url(services: ServicesDep, key: ApiKey, task: Task) -> str | None:
    """A link that plays the task's source: its own URL, or a signed link to its upload."""
    if not is_upload_url(task.input_url):
        return task.input_url
    if services.uploads is None:
        return None
    try:
        upload = services.uploads.upload_for(account_id=key.account_id, url=task.input_url)
    except FetchError:
        return None
    return services.uploads.link(upload)


@router.get(
    "/v1/tasks",
    operation_id="listTasks",
    summary="The key's newest tasks, newest first (upres extension)",
    response_model=TaskList,
    response_model_exclude_none=True,
    responses=error_responses(400, 401, 429, bad_request=()),
)
def list_tasks(
    key: AuthenticatedKey,
    tasks: TaskServiceDep,
    services: ServicesDep,
    limit: Annotated[int, Query(ge=1, le=100, description="How many tasks")] = 20,
) -> TaskList:
    items = [
        TaskListItem(
            **services.renderer.public(task).model_dump(),
            upscale_factor=str(int(task.factor)),
            input_url=task.input_url,
            fps=round(task.fps, 2)
            if task.fps is not None and not task.status.is_terminal
            else None,
            source_url=_source_url(services, key, task),
            preview_url=_preview_url(services, task),
            playable_url=_playable_url(services, task),
        )
        for task in tasks.list(key=key, limit=limit)
    ]
    return TaskList(data=items)
