"""The one exception tree of upres.

Every error that upres raises on purpose is an ``UpresError``. Third-party
errors (PyAV, torch, httpx, SQLAlchemy) are wrapped where they enter our code
with ``raise ... from exc``. HTTP statuses are decided in one place only,
``upres.api.errors``; the CLI prints ``str(error)`` and exits non-zero.

Each class carries ``code``: a stable string that API clients see as
``error.code`` (in the envelope, or on a failed task).

    UpresError
    ├── InvalidRequest                 invalid_parameter
    │   ├── InvalidTaskId              invalid_task_id
    │   ├── InvalidUrl                 invalid_parameter (a URL the HTTP client would refuse)
    │   ├── AddressNotAllowed          invalid_parameter (URL host is private/loopback/...)
    │   ├── RequestTooLarge            request_too_large (request body over the limit)
    │   └── RangeOutsideFile           invalid_parameter (a download's Range, 416)
    ├── MediaError                     bad input video (engine)
    │   ├── NotAVideo                  video_probe_failed
    │   ├── NoVideoStream              video_probe_failed
    │   ├── UnknownDuration            video_probe_failed
    │   ├── CorruptVideo               video_decode_failed
    │   │   └── TruncatedVideo         video_decode_failed (shorter than its container declares)
    │   ├── EmptyVideo                 video_decode_failed
    │   ├── UnsupportedCodec           video_decode_failed
    │   ├── FrameTooLarge              invalid_parameter
    │   └── VideoTooLong               invalid_parameter
    ├── FetchError                     video_probe_failed (input URL unreachable, too big, too slow)
    │   └── InputRefused               video_probe_failed (the same answer on every try: 4xx, ...)
    ├── AuthError
    │   ├── Unauthorized               unauthorized
    │   └── ModelAccessDenied          model_access_denied
    ├── InsufficientQuota              insufficient_quota
    ├── RateLimited                    rate_limit_exceeded
    ├── NotFound                       resource_not_found
    │   ├── TaskNotFound               resource_not_found
    │   └── ResultExpired              result_expired
    ├── Conflict                       conflict
    │   ├── TaskNotCancellable         task_not_cancellable
    │   └── IdempotencyConflict        idempotency_conflict
    ├── ModelError                     service_error
    │   ├── UnknownModel               invalid_parameter
    │   └── UnsupportedDenoise         invalid_parameter (a level the network does not offer)
    ├── Cancelled                      request_cancelled (a cancel token fired)
    ├── LeaseLost                      service_error (a fenced task or callback write was refused)
    ├── EncodeError                    service_error
    ├── ServiceUnavailable             service_unavailable
    └── ConfigError                    config_error (an UPRES_* setting does not validate)
"""

from __future__ import annotations

from typing import ClassVar

# The spec's messages for errors raised in more than one place.
PROBE_FAILED_MESSAGE = "Failed to detect video duration, please check video URL accessibility"
INSUFFICIENT_QUOTA_MESSAGE = "Insufficient quota. Please top up your account."


class UpresError(Exception):
    """Base of every error upres raises on purpose."""

    code: ClassVar[str] = "unknown_error"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InvalidRequest(UpresError):
    """A request parameter is missing, malformed or out of range."""

    code = "invalid_parameter"

    def __init__(self, message: str, *, param: str | None = None) -> None:
        super().__init__(message)
        self.param = param


class InvalidTaskId(InvalidRequest):
    """A task id does not have the ``task-unified-`` form."""

    code = "invalid_task_id"


class InvalidUrl(InvalidRequest):
    """A URL the HTTP client would refuse to send, or of a form upres does not accept."""


class AddressNotAllowed(InvalidRequest):
    """A URL's host resolves to an address the network policy forbids."""


class RequestTooLarge(InvalidRequest):
    """The request body is larger than the API accepts."""

    code = "request_too_large"


class RangeOutsideFile(InvalidRequest):
    """A download's Range header asks for bytes that are not in the file."""

    def __init__(self, message: str, *, size: int, param: str | None = None) -> None:
        super().__init__(message, param=param)
        self.size = size


class MediaError(UpresError):
    """The input file is not a video upres can process."""

    code = "video_decode_failed"


class NotAVideo(MediaError):
    """The file is not a media container FFmpeg can open."""

    code = "video_probe_failed"


class NoVideoStream(MediaError):
    """The container holds no video stream."""

    code = "video_probe_failed"


class UnknownDuration(MediaError):
    """No duration could be determined for the video stream."""

    code = "video_probe_failed"


class CorruptVideo(MediaError):
    """The video data is truncated or damaged."""


class TruncatedVideo(CorruptVideo):
    """A stream ends before the length its container declares: the file was cut."""


class EmptyVideo(MediaError):
    """The video stream holds no decodable frame."""


class UnsupportedCodec(MediaError):
    """No decoder is available for the video stream's codec."""


class FrameTooLarge(MediaError):
    """The frame size is over the configured limit."""

    code = "invalid_parameter"


class VideoTooLong(MediaError):
    """The duration is over the configured limit."""

    code = "invalid_parameter"


class FetchError(UpresError):
    """The input URL could not be downloaded (unreachable, too large, too slow)."""

    code = "video_probe_failed"


class InputRefused(FetchError):
    """The input URL failed in a way another try would repeat: it answered 4xx,
    is refused by the address policy, is not a URL the client can send, or is
    over the size limit. A task fails at once on it (transient failures retry)."""


class AuthError(UpresError):
    """Authentication or authorisation failed."""

    code = "unauthorized"


class Unauthorized(AuthError):
    """The API key is missing, unknown or revoked."""


class ModelAccessDenied(AuthError):
    """The API key may not use the requested model."""

    code = "model_access_denied"


class InsufficientQuota(UpresError):
    """The account's balance does not cover the reservation."""

    code = "insufficient_quota"


class RateLimited(UpresError):
    """The key sent more requests than its rate limit allows."""

    code = "rate_limit_exceeded"

    def __init__(self, message: str, *, limit: int, reset_after_s: float) -> None:
        super().__init__(message)
        self.limit = limit
        self.reset_after_s = reset_after_s


class NotFound(UpresError):
    """The resource does not exist (or is not visible to this key)."""

    code = "resource_not_found"


class TaskNotFound(NotFound):
    """No task with this id is visible to this key."""


class ResultExpired(NotFound):
    """A result link was valid once and has expired."""

    code = "result_expired"


class Conflict(UpresError):
    """The request conflicts with the resource's current state."""

    code = "conflict"


class TaskNotCancellable(Conflict):
    """The task has already ended and can no longer be cancelled."""

    code = "task_not_cancellable"


class IdempotencyConflict(Conflict):
    """An Idempotency-Key was reused with a different request body."""

    code = "idempotency_conflict"


class ModelError(UpresError):
    """A model could not be loaded or run."""

    code = "service_error"


class UnknownModel(ModelError):
    """No model with this id is registered."""

    code = "invalid_parameter"


class UnsupportedDenoise(ModelError):
    """A denoise level the chosen network does not offer."""

    code = "invalid_parameter"


class Cancelled(UpresError):
    """Work stopped because its cancel token fired."""

    code = "request_cancelled"


class LeaseLost(UpresError):
    """A worker's lease on a task, or a dispatcher's on a callback, was taken over.

    The holder's writes are refused.
    """

    code = "service_error"


class EncodeError(UpresError):
    """The output video could not be written."""

    code = "service_error"


class ServiceUnavailable(UpresError):
    """A dependency (database, worker) is not available."""

    code = "service_unavailable"


class ServerBusy(ServiceUnavailable):
    """The server is at a capacity bound; the same request may succeed later."""

    def __init__(self, message: str, *, retry_after_s: float) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class ConfigError(UpresError):
    """A setting (``UPRES_*`` variable or command-line override) has an invalid value."""

    code = "config_error"
