"""Request and response bodies of the HTTP API, field for field as the spec has them.

``render_task`` is the one way a ``Task`` becomes the public task object; the
``TaskRenderer`` built on it gives GET /v1/tasks/{id} and the callback body the
same bytes.
"""

from __future__ import annotations

import math
from datetime import datetime
from typing import Any, Literal, Protocol

from pydantic import BaseModel, ConfigDict, Field, StrictFloat, StrictInt, StrictStr
from pydantic.json_schema import SkipJsonSchema

from upres.domain.framerate import MAX_FRAME_RATE, SLOWMO_FACTORS
from upres.domain.tasks import API_MODEL, Task, TaskError, TaskStatus
from upres.inputs.urlpolicy import MAX_CALLBACK_URL_LENGTH
from upres.models.registry import MODELS


class ResultUrl(Protocol):
    """Turns a stored result key and its expiry into a download link
    (``ResultStorage.url`` of any storage backend)."""

    def __call__(self, key: str, *, expires_at: datetime) -> str: ...


_FACTOR_DOC = (
    'Video upscale factor: "1" (enhancement only), "2" (default) or "4". Accepts both string '
    'and number formats; invalid values silently fall back to "2".'
)


def _null_as_omitted(schema: dict[str, Any]) -> None:
    """Optional fields are documented as the service takes them: their value, or
    null, which it takes as omitted. OpenAPI 3.1 (the spec's version too) spells
    that as a "null" type beside the value's: ``type: [string, "null"]``, or a
    ``{"type": "null"}`` branch beside a referenced object."""
    for prop in schema.get("properties", {}).values():
        branches = prop.pop("anyOf", None)
        if branches is not None:
            (kept,) = [b for b in branches if b.get("type") != "null"]
            if "type" in kept:
                prop.update(kept, type=[kept["type"], "null"])
            else:
                prop["anyOf"] = [kept, {"type": "null"}]
        if "enum" in prop and None not in prop["enum"] and "null" in prop.get("type", []):
            prop["enum"] = [*prop["enum"], None]
        if "default" in prop and prop["default"] is None:
            del prop["default"]


_NETWORK_DOC = (
    "upres extension: the network that upscales the video, one of the ids `GET /v1/models` "
    "lists under `networks`; default: the operator's for the factor. Unlike the factor, an "
    "unknown network is refused (400 invalid_parameter, naming the valid ids)."
)
_DENOISE_DOC = (
    "upres extension: the denoise level (0-3) for a network that has levels "
    "(`denoise_levels` in `GET /v1/models`); a level the network does not offer is refused "
    "(400 invalid_parameter, naming its levels)."
)

_FRAME_RATE_DOC = (
    "upres extension: the output's frame rate; new frames are synthesised by motion "
    "interpolation (RIFE). At least the source's rate (divided by `slowmo`) and at most "
    f"{float(MAX_FRAME_RATE):g}, else 400 invalid_parameter naming the valid range; "
    "default: the source's rate. Priced per second of output (`interpolation_credits_per_second` "
    "in `GET /v1/models`)."
)
_SLOWMO_DOC = (
    "upres extension: slow motion, 1, 2, 4 or 8 times slower, with frames synthesised so "
    "the output keeps the source's rate (or `frame_rate`); the audio is left out. Default 1."
)


class ModelParams(BaseModel):
    """Model-specific parameters for controlling upscale behaviour."""

    model_config = ConfigDict(json_schema_extra=_null_as_omitted)

    upscale_factor: Any = Field(
        default="2",
        description=_FACTOR_DOC,
        json_schema_extra={"type": "string", "enum": ["1", "2", "4"], "example": "2"},
    )
    network: StrictStr | None = Field(
        default=None,
        description=_NETWORK_DOC,
        json_schema_extra={"enum": [spec.id for spec in MODELS]},
    )
    denoise: StrictInt | None = Field(
        default=None, description=_DENOISE_DOC, json_schema_extra={"minimum": 0, "maximum": 3}
    )
    frame_rate: StrictFloat | None = Field(
        default=None,
        description=_FRAME_RATE_DOC,
        allow_inf_nan=False,
        json_schema_extra={"maximum": float(MAX_FRAME_RATE), "example": 60},
    )
    slowmo: StrictInt | None = Field(
        default=None, description=_SLOWMO_DOC, json_schema_extra={"enum": list(SLOWMO_FACTORS)}
    )


class VideoGenerationRequest(BaseModel):
    """POST /v1/videos/generations. Unknown fields are ignored; an optional field
    sent as null is taken as omitted (generated clients send null for what they
    omit, as the spec itself is lenient with an invalid factor)."""

    model_config = ConfigDict(extra="ignore", json_schema_extra=_null_as_omitted)

    model: str = Field(
        description="Video upscale model name",
        json_schema_extra={"enum": [API_MODEL], "default": API_MODEL, "example": API_MODEL},
    )
    video_urls: list[str] = Field(
        description="Input video URL list for upscaling: exactly one directly accessible URL.",
        json_schema_extra={
            "items": {"type": "string", "format": "uri"},
            "minItems": 1,
            "maxItems": 1,
            "example": ["https://example.com/my-video.mp4"],
        },
    )
    model_params: ModelParams | None = Field(
        default=None, description="Model-specific parameters for controlling upscale behavior"
    )
    callback_url: str | None = Field(
        default=None,
        description=(
            f"HTTPS callback URL for task completion (at most {MAX_CALLBACK_URL_LENGTH} "
            "characters); null is taken as omitted: no callback"
        ),
        json_schema_extra={
            "format": "uri",
            "example": "https://your-domain.com/webhooks/video-task-completed",
        },
    )


class VideoTaskInfo(BaseModel):
    """Video task details."""

    can_cancel: bool
    estimated_time: int = Field(ge=0, description="Estimated completion time (seconds)")
    video_duration: int = Field(description="Video duration (seconds)")
    notes: list[str] | SkipJsonSchema[None] = Field(
        default=None,
        description="upres extension: what upres decided about the output for this video "
        "(e.g. h265 10-bit for an HDR source, deinterlacing); present only on a completed "
        "task that has some",
    )
    network: str | SkipJsonSchema[None] = Field(
        default=None,
        description="upres extension: the network that upscales this video (chosen in "
        "`model_params.network`, else the operator's default); absent on tasks from before "
        "tasks chose one",
    )
    denoise: int | SkipJsonSchema[None] = Field(
        default=None, description="upres extension: the network's denoise level, when chosen"
    )
    frame_rate: float | SkipJsonSchema[None] = Field(
        default=None,
        description="upres extension: the output's frame rate, when chosen in "
        "`model_params.frame_rate`",
    )
    slowmo: int | SkipJsonSchema[None] = Field(
        default=None,
        description="upres extension: how many times slower the output runs, when chosen in "
        "`model_params.slowmo`",
    )


class VideoUsage(BaseModel):
    """Usage and billing information."""

    billing_rule: Literal["per_call", "per_token", "per_second"] = "per_second"
    credits_reserved: float = Field(ge=0)
    user_group: str


class VideoTaskError(BaseModel):
    """Why a task failed or was cancelled: a string business code, not an HTTP status."""

    code: str
    message: str
    type: Literal["task_error"] = "task_error"


class VideoGenerationResponse(BaseModel):
    """The task object: POST's 200 body, GET /v1/tasks/{id} and every callback body.

    Named as the spec's component; the rest of upres calls it ``TaskPublic``.
    """

    created: int = Field(description="Task creation timestamp")
    error: VideoTaskError | SkipJsonSchema[None] = Field(
        default=None, description="Present only when the task failed or was cancelled"
    )
    id: str = Field(description="Task ID", examples=["task-unified-1757169743-7cvnl5zw"])
    model: str = Field(description="Actual model name used", examples=[API_MODEL])
    object: Literal["video.generation.task"] = "video.generation.task"
    progress: int = Field(ge=0, le=100, description="Task progress percentage (0-100)")
    results: list[str] | SkipJsonSchema[None] = Field(
        default=None, description="Result URLs; present only when the task completed"
    )
    status: TaskStatus = Field(description="Task status")
    task_info: VideoTaskInfo
    type: Literal["text", "image", "audio", "video"] = "video"
    usage: VideoUsage


TaskPublic = VideoGenerationResponse


class ErrorBody(BaseModel):
    """The inside of the error envelope."""

    code: str = Field(description="Error code identifier")
    message: str = Field(description="Error description message")
    type: str = Field(description="Error type")
    param: str | SkipJsonSchema[None] = Field(
        default=None, description="The request parameter at fault, when there is one"
    )


class ErrorResponse(BaseModel):
    """The envelope of every non-2xx answer."""

    error: ErrorBody


class ModelPricing(BaseModel):
    """Credits per started second of input video, by upscale factor."""

    billing_rule: Literal["per_second"] = "per_second"
    credits_per_second: dict[str, float]
    interpolation_credits_per_second: float | SkipJsonSchema[None] = Field(
        default=None,
        description="upres extension: credits per started second of output, added for a "
        "task that chooses `model_params.frame_rate` or `slowmo` (slow motion makes more "
        "seconds of output)",
    )


class ModelLimits(BaseModel):
    """Inputs over these limits are refused before any work starts."""

    max_videos_per_request: int
    max_width: int
    max_height: int
    max_duration_s: float
    max_input_bytes: int
    formats: list[str]
    result_ttl_s: int


class NetworkCard(BaseModel):
    """One network the engine can run for the API model (upres extension); a task
    chooses it in ``model_params.network``."""

    id: str
    description: str = Field(description="What it is good for, in one line")
    factors: list[str] = Field(description="The upscale factors it can run")
    default_for: list[str] = Field(
        description="The factors for which a task that names no network gets it"
    )
    denoise_levels: list[int] = Field(
        description="The levels `model_params.denoise` may take with it; empty: none"
    )
    price_multiplier: float = Field(
        description="Its price: the factor's credits per second times this"
    )
    credits_per_second: dict[str, float] = Field(
        description="Credits per started second of input with it, by factor"
    )
    runtimes: list[str] = Field(description="Runtimes that can run it: pytorch, ncnn")
    cpu_runtime: str = Field(description="The runtime it runs on when the device is the CPU")


class InterpolationCard(BaseModel):
    """One frame-interpolation network (upres extension): what makes the new frames
    of a task that chooses `model_params.frame_rate` or `slowmo`."""

    id: str
    description: str = Field(description="What it is good for, in one line")
    license: str = Field(description="The license of its weights")
    credits_per_second: float = Field(
        description="Credits per started second of output it synthesises, on top of the "
        "upscale's price"
    )


class ModelCard(BaseModel):
    """One model the API offers."""

    id: str
    object: Literal["model"] = "model"
    owned_by: str
    type: Literal["video"] = "video"
    factors: list[str]
    default_factor: str
    pricing: ModelPricing
    limits: ModelLimits
    networks: list[NetworkCard] = Field(
        default_factory=list,
        description="upres extension: the networks a task may choose "
        "(`model_params.network`), their prices and runtimes",
    )
    interpolation_networks: list[InterpolationCard] = Field(
        default_factory=list,
        description="upres extension: the networks that synthesise frames for "
        "`model_params.frame_rate` and `slowmo`, and their price",
    )


class ModelList(BaseModel):
    """GET /v1/models: OpenAI-style list."""

    object: Literal["list"] = "list"
    data: list[ModelCard]


class CreditsPublic(BaseModel):
    """GET /v1/credits: what the key's account has left."""

    object: Literal["credits"] = "credits"
    remaining_credits: float
    user_group: str


class HealthPublic(BaseModel):
    """GET /healthz: ``ok`` only when every check passed."""

    status: Literal["ok", "unhealthy"]
    checks: dict[str, bool]


def whole_seconds(duration_s: float) -> int:
    """A duration as the API shows it: started seconds (float noise ignored)."""
    return math.ceil(round(duration_s, 6))


def render_task(task: Task, *, result_url: ResultUrl) -> TaskPublic:
    """The public task object for ``task``; result links are issued afresh each call."""
    terminal = task.status.is_terminal
    return TaskPublic(
        created=int(task.created_at.timestamp()),
        error=_public_error(task),
        id=task.id,
        model=task.model,
        progress=100 if task.status is TaskStatus.COMPLETED else max(0, min(100, task.progress)),
        results=_results(task, result_url) if task.status is TaskStatus.COMPLETED else None,
        status=task.status,
        task_info=VideoTaskInfo(
            can_cancel=task.status.can_cancel,
            estimated_time=0 if terminal else max(0, task.estimated_time_s),
            video_duration=whole_seconds(task.video_duration_s),
            notes=list(task.notes) if task.status is TaskStatus.COMPLETED and task.notes else None,
            network=task.network,
            denoise=task.denoise,
            frame_rate=task.frame_rate,
            slowmo=task.slowmo,
        ),
        usage=VideoUsage(credits_reserved=task.credits_reserved, user_group=task.user_group),
    )


def _results(task: Task, result_url: ResultUrl) -> list[str]:
    if task.result_key is None or task.result_expires_at is None:
        return []
    return [result_url(task.result_key, expires_at=task.result_expires_at)]


def _public_error(task: Task) -> VideoTaskError | None:
    if task.status is TaskStatus.CANCELLED:
        error = task.error or TaskError(code="request_cancelled", message="Task was cancelled")
    elif task.status is TaskStatus.FAILED:
        error = task.error or TaskError(code="unknown_error", message="Task failed")
    else:
        return None
    return VideoTaskError(code=error.code, message=error.message)


class TaskRenderer:
    """Renders a task as the JSON text clients see, for responses and callbacks alike.

    It satisfies ``upres.domain.records.CallbackBody``.
    """

    def __init__(self, result_url: ResultUrl) -> None:
        self._result_url = result_url

    def public(self, task: Task) -> TaskPublic:
        return render_task(task, result_url=self._result_url)

    def __call__(self, task: Task) -> str:
        return self.public(task).model_dump_json(exclude_none=True)
