"""GET /healthz (database and worker checks) and GET /metrics (Prometheus text)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Response
from fastapi.responses import JSONResponse

from upres.api.deps import MetricsDep, MetricsReader, ServicesDep
from upres.api.metrics import METRICS_CONTENT_TYPE
from upres.api.openapi import PUBLIC_OPERATION, error_responses
from upres.api.schemas import HealthPublic
from upres.errors import ServiceUnavailable

router = APIRouter(tags=["Operations"])

_HEALTH_RESPONSES: dict[int | str, dict[str, Any]] = {
    503: {"model": HealthPublic, "description": "A check failed"},
}


def _database_ok(services: ServicesDep) -> bool:
    try:
        services.store.ping()
    except ServiceUnavailable:
        return False
    return True


@router.get(
    "/healthz",
    operation_id="health",
    summary="Liveness and readiness: database answers and a worker is alive",
    response_model=HealthPublic,
    responses=_HEALTH_RESPONSES,
    openapi_extra=PUBLIC_OPERATION,
)
def health(services: ServicesDep) -> JSONResponse:
    checks = {"database": _database_ok(services), "worker": services.worker_alive()}
    healthy = all(checks.values())
    body = HealthPublic(status="ok" if healthy else "unhealthy", checks=checks)
    return JSONResponse(body.model_dump(), status_code=200 if healthy else 503)


@router.get(
    "/metrics",
    operation_id="metrics",
    summary="Prometheus metrics (UPRES_METRICS_TOKEN as bearer; without it, loopback only)",
    response_class=Response,
    responses={
        200: {"description": "Prometheus text format", "content": {"text/plain": {}}},
        **error_responses(401, 429),
    },
    openapi_extra=PUBLIC_OPERATION,
    dependencies=[MetricsReader],
)
def metrics(metrics: MetricsDep) -> Response:
    return Response(metrics.render(), media_type=METRICS_CONTENT_TYPE)
