"""The outermost layer of the app: request ids, rate-limit headers, metrics, last-resort 500.

A plain ASGI middleware (not ``BaseHTTPMiddleware``), so streamed file
responses pass through untouched.
"""

from __future__ import annotations

import re
import time
import uuid
from typing import Any

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from upres.api.errors import internal_error
from upres.api.metrics import ApiMetrics
from upres.api.ratelimit import RateLimitStatus

REQUEST_ID_HEADER = "x-request-id"
# A client's id is echoed only when it is short and harmless in logs.
_SAFE_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")


def _incoming_request_id(scope: Scope) -> str | None:
    for name, value in scope.get("headers", []):
        if name == REQUEST_ID_HEADER.encode():
            text = value.decode("latin-1")
            return text if _SAFE_ID.match(text) else None
    return None


def _route_label(scope: Scope) -> str:
    route: Any = scope.get("route")
    path = getattr(route, "path", None)
    return path if isinstance(path, str) else "unmatched"


class RequestContextMiddleware:
    """Gives every HTTP request an id (echoed in ``x-request-id``), adds the
    X-RateLimit-* headers the auth dependency left in the request state, counts
    the request in the metrics, and answers 500 in the envelope for any
    exception nothing else handled."""

    def __init__(self, app: ASGIApp, *, metrics: ApiMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = _incoming_request_id(scope) or f"req_{uuid.uuid4().hex}"
        state: dict[str, Any] = scope.setdefault("state", {})
        state["request_id"] = request_id
        started = time.perf_counter()
        sent_status: list[int] = []

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                sent_status.append(message["status"])
                self._add_headers(message, state, request_id)
            await send(message)

        try:
            await self.app(scope, receive, send_with_headers)
        except Exception as exc:
            if sent_status:  # too late for an error response: let the server drop it
                raise
            await internal_error(exc, request_id=request_id)(scope, receive, send_with_headers)
        finally:
            self.metrics.observe_request(
                method=scope["method"],
                route=_route_label(scope),
                status=sent_status[0] if sent_status else 500,
                duration_s=time.perf_counter() - started,
            )

    @staticmethod
    def _add_headers(message: Message, state: dict[str, Any], request_id: str) -> None:
        headers = MutableHeaders(scope=message)
        headers[REQUEST_ID_HEADER] = request_id
        limit = state.get("rate_limit")
        if isinstance(limit, RateLimitStatus):
            for name, value in limit.headers().items():
                headers.setdefault(name, value)
