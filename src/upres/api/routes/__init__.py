"""One router per resource; ``ROUTERS`` is what the app mounts, in order."""

from __future__ import annotations

from fastapi import APIRouter

from upres.api.routes import credits, files, generations, health, models, tasks

ROUTERS: tuple[APIRouter, ...] = (
    generations.router,
    tasks.router,
    files.router,
    models.router,
    credits.router,
    health.router,
)
