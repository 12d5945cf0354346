"""The outer layers of the app: request ids, rate-limit headers, metrics,
last-resort 500, and the request body size limit.

Plain ASGI middleware (not ``BaseHTTPMiddleware``), so streamed file
responses pass through untouched.
"""

from __future__ import annotations

import re
import secrets
import time
from collections import deque
from typing import Any

from starlette.datastructures import Headers
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from upres.api.errors import internal_error, request_id_of, upres_error_response
from upres.api.metrics import ApiMetrics
from upres.api.ratelimit import RateLimitStatus
from upres.errors import RequestTooLarge

REQUEST_ID_HEADER = "x-request-id"
_REQUEST_ID_RAW = REQUEST_ID_HEADER.encode()
# A client's id is echoed only when it is short and harmless in logs.
_SAFE_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")


def _incoming_request_id(scope: Scope) -> str | None:
    for name, value in scope.get("headers", []):
        if name == _REQUEST_ID_RAW:
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
        request_id = _incoming_request_id(scope) or f"req_{secrets.token_hex(16)}"
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
        # On the raw list (ASGI names are lower case): every response passes here,
        # and Starlette's MutableHeaders cost a poll several microseconds.
        raw = [
            (name, value) for name, value in message.get("headers", ()) if name != _REQUEST_ID_RAW
        ]
        raw.append((_REQUEST_ID_RAW, request_id.encode("latin-1")))
        limit = state.get("rate_limit")
        if isinstance(limit, RateLimitStatus):
            present = {name for name, _ in raw}
            for name, value in limit.headers().items():
                if (lower := name.lower().encode("latin-1")) not in present:
                    raw.append((lower, value.encode("latin-1")))
        message["headers"] = raw


class BodySizeLimitMiddleware:
    """Answers 413 ``request_too_large`` for a request body over ``max_bytes``.

    A declared Content-Length over the limit is refused before any of the body
    is read. Otherwise the body is read ahead and counted (a chunked body
    declares no length), and refused as soon as the count passes the limit,
    without reading further; within the limit, the app then receives the same
    messages it would have received from the server. Paths in ``exempt``
    (uploads) stream their bodies under limits of their own.
    """

    def __init__(
        self, app: ASGIApp, *, max_bytes: int, exempt: frozenset[str] = frozenset()
    ) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.exempt = exempt

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in self.exempt:
            await self.app(scope, receive, send)
            return
        declared = declared_length(scope)
        if declared is not None and declared > self.max_bytes:
            await self._refuse(scope, receive, send)
            return
        messages = await self._read_ahead(receive)
        if messages is None:
            await self._refuse(scope, receive, send)
            return
        await self.app(scope, _replaying(messages, receive), send)

    async def _read_ahead(self, receive: Receive) -> list[Message] | None:
        """The request's messages up to its last body part or a disconnect;
        None as soon as the body passes ``max_bytes``."""
        messages: list[Message] = []
        size = 0
        while True:
            message = await receive()
            messages.append(message)
            if message["type"] != "http.request":
                return messages
            size += len(message.get("body", b""))
            if size > self.max_bytes:
                return None
            if not message.get("more_body", False):
                return messages

    async def _refuse(self, scope: Scope, receive: Receive, send: Send) -> None:
        error = RequestTooLarge(f"Request body is over the limit of {self.max_bytes} bytes")
        response = upres_error_response(error, request_id=request_id_of(Request(scope)))
        await response(scope, receive, send)


def declared_length(scope: Scope) -> int | None:
    """The declared body length; None when absent or not a number (the server
    refuses a malformed one itself)."""
    value = Headers(scope=scope).get("content-length")
    return int(value) if value is not None and value.isdigit() else None


def _replaying(messages: list[Message], receive: Receive) -> Receive:
    """A receive that hands out ``messages`` first, then defers to ``receive``."""
    pending = deque(messages)

    async def replayed() -> Message:
        return pending.popleft() if pending else await receive()

    return replayed
