"""One router per resource; ``ROUTERS`` is what the app mounts, in order."""

from __future__ import annotations

from fastapi import APIRouter

from upres.api.routes import (
    credits,
    estimates,
    files,
    generations,
    health,
    models,
    page,
    task_list,
    tasks,
    uploads,
)

ROUTERS: tuple[APIRouter, ...] = (
    generations.router,
    estimates.router,
    task_list.router,
    tasks.router,
    uploads.router,
    files.router,
    models.router,
    credits.router,
    health.router,
    page.router,
)
