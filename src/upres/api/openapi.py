"""What /openapi.json says beyond the route declarations: the spec's examples,
the error responses of every status, and no trace of FastAPI's 422 shape."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from upres.api.schemas import ErrorResponse
from upres.domain.tasks import API_MODEL
from upres.errors import INSUFFICIENT_QUOTA_MESSAGE, PROBE_FAILED_MESSAGE
from upres.services.keys import UNAUTHORIZED_MESSAGE
from upres.services.tasks import IDEMPOTENCY_CONFLICT_MESSAGE, MISSING_VIDEO_MESSAGE

_VIDEO = "https://example.com/my-video.mp4"

REQUEST_EXAMPLES: dict[str, Any] = {
    "basic_2x_upscale": {
        "summary": "Basic 2x Upscale (default)",
        "value": {"model": API_MODEL, "video_urls": [_VIDEO]},
    },
    "upscale_4x": {
        "summary": "4x Upscale (higher quality, 1.75x price)",
        "value": {
            "model": API_MODEL,
            "video_urls": [_VIDEO],
            "model_params": {"upscale_factor": "4"},
        },
    },
    "upscale_1x_enhance": {
        "summary": "1x Enhancement (no resolution change, quality boost only)",
        "value": {
            "model": API_MODEL,
            "video_urls": [_VIDEO],
            "model_params": {"upscale_factor": "1"},
        },
    },
    "with_callback": {
        "summary": "With Callback URL",
        "value": {
            "model": API_MODEL,
            "video_urls": [_VIDEO],
            "model_params": {"upscale_factor": "2"},
            "callback_url": "https://your-domain.com/webhooks/video-task-completed",
        },
    },
}


def _error(code: str, message: str, type_: str, **extra: str) -> dict[str, Any]:
    return {"error": {"code": code, "message": message, "type": type_, **extra}}


_INVALID = "invalid_request_error"

# status -> (description, {example name: (summary, body)})
_ERRORS: Mapping[int, tuple[str, Mapping[str, tuple[str, dict[str, Any]]]]] = {
    400: (
        "Invalid request parameters",
        {
            "missing_video": (
                "Missing video URL",
                _error(
                    "invalid_parameter",
                    MISSING_VIDEO_MESSAGE,
                    _INVALID,
                ),
            ),
            "probe_failed": (
                "Video probe failed",
                _error(
                    "video_probe_failed",
                    PROBE_FAILED_MESSAGE,
                    _INVALID,
                ),
            ),
            "invalid_task_id": (
                "Malformed task id",
                _error("invalid_task_id", "Invalid task ID format", _INVALID, param="task_id"),
            ),
            "bad_range": (
                "Malformed Range header",
                _error(
                    "invalid_parameter",
                    "Range header is malformed: Only support bytes range",
                    _INVALID,
                    param="Range",
                ),
            ),
        },
    ),
    401: (
        "Unauthenticated, token is invalid or expired",
        {
            "unauthorized": (
                "",
                _error("unauthorized", UNAUTHORIZED_MESSAGE, "authentication_error"),
            )
        },
    ),
    402: (
        "Insufficient quota, top-up required",
        {
            "insufficient_quota": (
                "",
                _error(
                    "insufficient_quota",
                    INSUFFICIENT_QUOTA_MESSAGE,
                    "insufficient_quota",
                ),
            )
        },
    ),
    403: (
        "Access denied",
        {
            "model_access_denied": (
                "",
                _error(
                    "model_access_denied",
                    f"Token does not have access to model: {API_MODEL}",
                    _INVALID,
                ),
            )
        },
    ),
    404: (
        "Not found (or not visible to this key)",
        {"not_found": ("", _error("resource_not_found", "Task not found", _INVALID))},
    ),
    405: (
        "Method not allowed",
        {"method_not_allowed": ("", _error("method_not_allowed", "Method Not Allowed", _INVALID))},
    ),
    409: (
        "Conflict with the current state (task ended, Idempotency-Key reused)",
        {
            "task_not_cancellable": (
                "",
                _error("task_not_cancellable", "Task has already ended", _INVALID),
            ),
            "idempotency_conflict": (
                "",
                _error(
                    "idempotency_conflict",
                    IDEMPOTENCY_CONFLICT_MESSAGE,
                    _INVALID,
                ),
            ),
        },
    ),
    410: (
        "The result link has expired",
        {"result_expired": ("", _error("result_expired", "Result link has expired", _INVALID))},
    ),
    416: (
        "The requested range is outside the file (Content-Range: bytes */<size>)",
        {
            "range_outside_file": (
                "",
                _error(
                    "invalid_parameter",
                    "Range is outside the file of 1000 bytes",
                    _INVALID,
                    param="Range",
                ),
            )
        },
    ),
    413: (
        "Request body over the size limit",
        {
            "request_too_large": (
                "",
                _error(
                    "request_too_large", "Request body is over the limit of 1048576 bytes", _INVALID
                ),
            )
        },
    ),
    429: (
        "Rate limit exceeded",
        {
            "rate_limit_exceeded": (
                "",
                _error(
                    "rate_limit_exceeded",
                    "Too many requests, please try again later",
                    "rate_limit_error",
                ),
            )
        },
    ),
    500: (
        "Internal server error",
        {"internal_error": ("", _error("internal_error", "Internal server error", "api_error"))},
    ),
    503: (
        "A dependency is unavailable",
        {
            "service_unavailable": (
                "",
                _error("service_unavailable", "Database unavailable", "api_error"),
            )
        },
    ),
}

AUTHENTICATED = (401, 429)


def error_responses(
    *statuses: int, bad_request: tuple[str, ...] = ("missing_video", "probe_failed")
) -> dict[int | str, dict[str, Any]]:
    """The ``responses=`` entries documenting ``statuses`` (and 500) in the envelope;
    ``bad_request`` names the 400 examples that fit the operation."""
    docs: dict[int | str, dict[str, Any]] = {}
    for status in sorted({*statuses, 500}):
        description, examples = _ERRORS[status]
        content = {
            name: ({"summary": summary} if summary else {}) | {"value": value}
            for name, (summary, value) in examples.items()
            if status != 400 or name in bad_request
        }
        docs[status] = {
            "model": ErrorResponse,
            "description": description,
            "content": {"application/json": {"examples": content}},
        }
    if 429 in docs:
        docs[429]["headers"] = _RATE_LIMIT_HEADERS
    return docs


def _integer_header(description: str) -> dict[str, Any]:
    return {"description": description, "required": True, "schema": {"type": "integer"}}


_RATE_LIMIT_HEADERS = {
    "Retry-After": _integer_header("Seconds until the key may send a request again"),
    "X-RateLimit-Limit": _integer_header("Requests allowed per minute for this key"),
    "X-RateLimit-Remaining": _integer_header("Requests left right now"),
    "X-RateLimit-Reset": _integer_header("Seconds until the allowance is full again"),
}


PUBLIC_OPERATION: dict[str, Any] = {"security": []}
"""``openapi_extra`` of the endpoints that need no key (health, metrics, signed files)."""


def _strip_validation_422(schema: dict[str, Any]) -> None:
    for path_item in schema.get("paths", {}).values():
        for operation in path_item.values():
            operation.get("responses", {}).pop("422", None)
    components = schema.get("components", {}).get("schemas", {})
    for name in ("HTTPValidationError", "ValidationError"):
        components.pop(name, None)


# What any operation may answer, whatever its route declares.
_GENERIC_STATUSES = (405, 413)


def _document_generic(schema: dict[str, Any]) -> None:
    for item in schema.get("paths", {}).values():
        for operation in item.values():
            for status in _GENERIC_STATUSES:
                operation["responses"].setdefault(str(status), _ref_response(status))


def _ref_response(status: int) -> dict[str, Any]:
    return {
        "description": _ERRORS[status][0],
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorResponse"}}},
    }


def install_openapi(app: FastAPI) -> None:
    """Makes ``app.openapi()`` produce the cleaned document (cached after the first call)."""

    def build() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = get_openapi(
                title=app.title,
                version=app.version,
                description=app.description,
                routes=app.routes,
                tags=app.openapi_tags,
            )
            schema["security"] = [{"bearerAuth": []}]
            _strip_validation_422(schema)
            _document_generic(schema)
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = build  # type: ignore[method-assign]
