"""A task as an HTTP response: exactly the bytes its callback would carry."""

from __future__ import annotations

from fastapi import Response

from upres.api.schemas import TaskRenderer
from upres.domain.tasks import Task


def task_response(renderer: TaskRenderer, task: Task) -> Response:
    return Response(content=renderer(task), media_type="application/json")
