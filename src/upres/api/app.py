"""``create_app(settings, services=...)``: the FastAPI app, its routers, middleware and lifespan."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractContextManager, asynccontextmanager, nullcontext
from typing import Any

from fastapi import FastAPI

from upres.api.admission import SubmissionGate
from upres.api.deps import Services
from upres.api.errors import install_error_handlers
from upres.api.keycache import KeyCache
from upres.api.keyslots import key_slots
from upres.api.metrics import ApiMetrics
from upres.api.middleware import BodySizeLimitMiddleware, RequestContextMiddleware
from upres.api.openapi import install_openapi
from upres.api.ratelimit import RateLimiter, limit_storage
from upres.api.readpath import ReadPath
from upres.api.routes import ROUTERS
from upres.api.routes.page import mount_static
from upres.api.routes.uploads import UPLOADS_PATH
from upres.clock import Ticks
from upres.config import Settings

_DESCRIPTION = (
    "AI-powered video super-resolution upscaling, compatible with the hosted "
    "topaz-video-upscale task API. Every non-2xx answer is "
    '`{"error": {"code", "message", "type"}}`.'
)

_TAGS: list[dict[str, Any]] = [
    {"name": "Video Generation", "description": "AI video generation APIs"},
    {"name": "Task Management", "description": "Query and cancel tasks"},
    {"name": "Uploads", "description": "Videos from the client's disk (upres extension)"},
    {"name": "Files", "description": "Result downloads (local storage)"},
    {"name": "Models", "description": "What this API offers"},
    {"name": "Account", "description": "Credits of the key's account"},
    {"name": "Operations", "description": "Health and metrics"},
]


ServicesSource = Callable[[], AbstractContextManager[Services]]
"""Opens the services when the app starts and closes them when it stops
(``upres.wiring.services_from_settings``)."""


def _opened(services: Services | ServicesSource) -> AbstractContextManager[Services]:
    return nullcontext(services) if isinstance(services, Services) else services()


def _lifespan(services: Services | ServicesSource, metrics: ApiMetrics) -> Callable[[FastAPI], Any]:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        with _opened(services) as ready:
            app.state.services = ready
            collector = metrics.watch_store(ready.store)
            try:
                yield
            finally:
                app.state.submissions.close()
                metrics.unwatch(collector)

    return lifespan


def create_app(
    settings: Settings, *, services: Services | ServicesSource, ticks: Ticks = time.monotonic
) -> FastAPI:
    """The API app on ``services``: built ones, or a source that opens them when
    the app starts and closes them when it stops. Cached keys live on ``ticks``."""
    metrics = ApiMetrics()
    app = FastAPI(
        title="upres: topaz-video-upscale API",
        description=_DESCRIPTION,
        version="1.0.0",
        openapi_tags=_TAGS,
        # upres reports through its own Prometheus metrics; FastAPI's OpenTelemetry
        # hooks would otherwise look up their providers on every request.
        telemetry={"tracing": False, "metrics": False, "logs": False},
        lifespan=_lifespan(services, metrics),
    )
    app.state.settings = settings
    app.state.metrics = metrics
    key_cache = app.state.key_cache = KeyCache(ttl_s=settings.key_cache_ttl_s, clock=ticks)
    limits = limit_storage(settings.redis_url)
    limiter = app.state.limiter = RateLimiter(
        limit=settings.rate_limit_per_minute, window_s=60, storage=limits, namespace="key"
    )
    auth_limiter = app.state.auth_limiter = RateLimiter(
        limit=settings.auth_failures_per_minute, window_s=60, storage=limits, namespace="authfail"
    )
    app.state.submissions = SubmissionGate(
        threads=settings.submit_threads,
        max_pending=settings.submit_max_pending,
        max_per_key=settings.submit_max_per_key,
        slots=key_slots(settings.redis_url),
    )
    install_error_handlers(app)
    for router in ROUTERS:
        app.include_router(router)
    mount_static(app)
    # Added first, so they run inside the request context: a 413 or a poll gets a
    # request id and is counted in the metrics. Uploads stream under their own limit.
    app.add_middleware(
        BodySizeLimitMiddleware,
        max_bytes=settings.max_request_bytes,
        exempt=frozenset({UPLOADS_PATH}),
    )
    app.add_middleware(
        ReadPath,
        key_cache=key_cache,
        limiter=limiter,
        auth_limiter=auth_limiter,
    )
    app.add_middleware(RequestContextMiddleware, metrics=metrics)
    install_openapi(app)
    return app
