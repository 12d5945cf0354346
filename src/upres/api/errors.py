"""The only place where an exception becomes an HTTP status and an error envelope.

Every non-2xx answer is ``{"error": {"code", "message", "type"[, "param"]}}``:
upres's own errors by their class, FastAPI's request validation as 400
``invalid_parameter`` (never its 422 shape), Starlette's 400/404/405, and anything
unexpected as 500 ``internal_error`` carrying the request id (logged with the
traceback).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match

from upres.api.ratelimit import RateLimitStatus
from upres.api.schemas import ErrorBody, ErrorResponse
from upres.errors import (
    AuthError,
    Conflict,
    FetchError,
    InsufficientQuota,
    InvalidRequest,
    MediaError,
    ModelAccessDenied,
    NotFound,
    RangeOutsideFile,
    RateLimited,
    RequestTooLarge,
    ResultExpired,
    ServerBusy,
    ServiceUnavailable,
    UnknownModel,
    UnsupportedDenoise,
    UpresError,
)
from upres.services.tasks import MISSING_VIDEO_MESSAGE

logger = logging.getLogger(__name__)

INVALID_REQUEST = "invalid_request_error"

# Looked up along the exception's MRO, so the most specific class wins.
_STATUS: Mapping[type[UpresError], tuple[int, str]] = {
    InvalidRequest: (400, INVALID_REQUEST),
    UnknownModel: (400, INVALID_REQUEST),
    UnsupportedDenoise: (400, INVALID_REQUEST),
    MediaError: (400, INVALID_REQUEST),
    FetchError: (400, INVALID_REQUEST),
    AuthError: (401, "authentication_error"),
    InsufficientQuota: (402, "insufficient_quota"),
    ModelAccessDenied: (403, INVALID_REQUEST),
    NotFound: (404, INVALID_REQUEST),
    ResultExpired: (410, INVALID_REQUEST),
    Conflict: (409, INVALID_REQUEST),
    RequestTooLarge: (413, INVALID_REQUEST),
    RangeOutsideFile: (416, INVALID_REQUEST),
    RateLimited: (429, "rate_limit_error"),
    ServiceUnavailable: (503, "api_error"),
}

# The spec's own wording where it has one (its "missing_video" example).
_MISSING_MESSAGES: Mapping[str, str] = {
    "video_urls": MISSING_VIDEO_MESSAGE,
}

# Starlette's own refusals, in the spec's codes. Its 400 is FastAPI's "There was
# an error parsing the body": not UTF-8, nested too deeply, a number too long.
_HTTP_CODES: Mapping[int, str] = {
    404: "resource_not_found",
    405: "method_not_allowed",
}
_HTTP_MESSAGES: Mapping[int, str] = {
    400: "Request body could not be read as JSON (it must be UTF-8, not too deeply nested)",
    404: "No such resource",
}


def error_response(
    status: int,
    *,
    code: str,
    message: str,
    type_: str,
    param: str | None = None,
    headers: Mapping[str, str] | None = None,
) -> JSONResponse:
    """The envelope as a response."""
    body = ErrorResponse(error=ErrorBody(code=code, message=message, type=type_, param=param))
    return JSONResponse(
        body.model_dump(exclude_none=True), status_code=status, headers=dict(headers or {})
    )


def request_id_of(request: Request) -> str:
    """The id the request middleware gave this request ("unknown" outside it)."""
    return str(getattr(request.state, "request_id", "unknown"))


def internal_error(exc: BaseException, *, request_id: str) -> JSONResponse:
    """500 for a bug or an error that should never reach a client; logs the traceback."""
    logger.error("unhandled error in request %s", request_id, exc_info=exc)
    return error_response(
        500,
        code="internal_error",
        message=f"Internal server error (request id: {request_id})",
        type_="api_error",
    )


def _status_of(exc: UpresError) -> tuple[int, str] | None:
    for cls in type(exc).__mro__:
        if cls in _STATUS:
            return _STATUS[cls]
    return None


def _rate_limit_headers(exc: RateLimited) -> dict[str, str]:
    status = RateLimitStatus(limit=exc.limit, remaining=0, reset_after_s=exc.reset_after_s)
    return {"Retry-After": str(max(1, math.ceil(exc.reset_after_s))), **status.headers()}


def _extra_headers(exc: UpresError, status: int) -> dict[str, str]:
    if isinstance(exc, RateLimited):
        return _rate_limit_headers(exc)
    if isinstance(exc, ServerBusy):
        return {"Retry-After": str(max(1, math.ceil(exc.retry_after_s)))}
    if isinstance(exc, RequestTooLarge):
        # The rest of the body stays unread: closing beats the server draining it.
        return {"Connection": "close"}
    if isinstance(exc, RangeOutsideFile):
        return {"Content-Range": f"bytes */{exc.size}"}
    if status == 401:
        return {"WWW-Authenticate": "Bearer"}
    return {}


def upres_error_response(exc: UpresError, *, request_id: str) -> JSONResponse:
    """``exc`` in the envelope with its status (see ``_STATUS``); 500 when unmapped.

    Also for ASGI middleware, which runs outside the app's exception handlers.
    """
    mapped = _status_of(exc)
    if mapped is None:
        return internal_error(exc, request_id=request_id)
    status, type_ = mapped
    return error_response(
        status,
        code=exc.code,
        message=exc.message,
        type_=type_,
        param=getattr(exc, "param", None),
        headers=_extra_headers(exc, status),
    )


async def handle_upres_error(request: Request, exc: Exception) -> JSONResponse:
    """Maps the upres exception tree to statuses (see ``_STATUS``)."""
    assert isinstance(exc, UpresError)
    request.app.state.metrics.observe_error(exc)
    return upres_error_response(exc, request_id=request_id_of(request))


def _param(loc: Sequence[Any]) -> str | None:
    # loc is (where, *path): where is body, path, query or header
    return ".".join(str(part) for part in loc[1:]) or None


def _validation_message(error: Mapping[str, Any], param: str | None) -> str:
    kind = error.get("type")
    if kind == "json_invalid":
        return "Request body is not valid JSON"
    if param is None:
        if kind == "missing":
            return "Request body is required"
        if kind == "model_attributes_type":
            return "Request body must be a JSON object sent as application/json"
        return f"Request body: {error.get('msg')}"
    if kind == "missing":
        return _MISSING_MESSAGES.get(param, f"{param} is required")
    return f"{param}: {error.get('msg', 'invalid value')}"


async def handle_validation_error(request: Request, exc: Exception) -> JSONResponse:
    """FastAPI's request validation (bad JSON, wrong types, no body) as 400."""
    assert isinstance(exc, RequestValidationError)
    errors = exc.errors()
    first: Mapping[str, Any] = errors[0] if errors else {}
    # For unparsable JSON, loc holds a character position, not a parameter.
    param = None if first.get("type") == "json_invalid" else _param(first.get("loc", ()))
    return error_response(
        400,
        code="invalid_parameter",
        message=_validation_message(first, param),
        type_=INVALID_REQUEST,
        param=param,
    )


async def handle_http_exception(request: Request, exc: Exception) -> JSONResponse:
    """Starlette's own answers (unknown route, wrong method, unparsable body) in
    the envelope; any client error without a code of its own is ``invalid_parameter``."""
    assert isinstance(exc, StarletteHTTPException)
    status = exc.status_code
    if status >= 500:
        return internal_error(exc, request_id=request_id_of(request))
    headers = dict(exc.headers or {})
    if status == 405:
        headers["Allow"] = _allowed_methods(request)
    return error_response(
        status,
        code=_HTTP_CODES.get(status, "invalid_parameter"),
        message=_HTTP_MESSAGES.get(status, str(exc.detail)),
        type_=INVALID_REQUEST,
        headers=headers,
    )


_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")


def _allowed_methods(request: Request) -> str:
    """Every method some route of this path takes fully (Starlette names only the
    first partly matching route's, and GET and HEAD of a result link are two)."""
    routes = request.app.router.routes
    return ", ".join(
        method
        for method in _METHODS
        if any(
            route.matches({**request.scope, "method": method})[0] is Match.FULL for route in routes
        )
    )


def install_error_handlers(app: FastAPI) -> None:
    """Registers every handler above on ``app``."""
    app.add_exception_handler(UpresError, handle_upres_error)
    app.add_exception_handler(RequestValidationError, handle_validation_error)
    app.add_exception_handler(StarletteHTTPException, handle_http_exception)
