"""POST /v1/videos/generations: submit an upscaling task."""

from __future__ import annotations

from functools import partial
from typing import Annotated

from fastapi import APIRouter, Body, Header, Response

from upres.api.deps import (
    AuthenticatedKey,
    MetricsDep,
    ServicesDep,
    SubmissionsDep,
    TaskServiceDep,
)
from upres.api.openapi import REQUEST_EXAMPLES, error_responses
from upres.api.routes._task_response import task_response
from upres.api.schemas import ModelParams, TaskPublic, VideoGenerationRequest
from upres.domain.tasks import Factor
from upres.services.tasks import Submission

router = APIRouter(tags=["Video Generation"])

_DESCRIPTION = """\
- Topaz Video Upscale (topaz-video-upscale) model supports AI-powered video super-resolution\
 upscaling
- Supports 1x (enhancement only), 2x, and 4x upscale factors
- Billing is based on input video duration (per second) and upscale factor
- Asynchronous processing mode, use the returned task ID to query status (`GET /v1/tasks/{task_id}`)
- Upscaled video links are valid for 24 hours, please save them promptly
"""

RequestBody = Annotated[VideoGenerationRequest, Body(openapi_examples=REQUEST_EXAMPLES)]
IdempotencyKey = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        max_length=255,
        description="Replays the first response for 24 h when the same request is sent again",
    ),
]
REPLAYED_HEADER = "Idempotent-Replayed"


def to_submission(body: VideoGenerationRequest) -> Submission:
    """The request as the task service takes it; the factor is parsed leniently,
    the network, denoise level, frame rate and slow motion are checked there."""
    params = body.model_params or ModelParams()
    return Submission(
        model=body.model,
        video_urls=list(body.video_urls),
        factor=Factor.lenient(params.upscale_factor),
        callback_url=body.callback_url,
        network=params.network,
        denoise=params.denoise,
        frame_rate=params.frame_rate,
        slowmo=params.slowmo,
    )


@router.post(
    "/v1/videos/generations",
    operation_id="createVideoGeneration",
    summary="topaz-video-upscale API",
    description=_DESCRIPTION,
    response_model=TaskPublic,
    response_description="Video upscale task created successfully",
    responses=error_responses(400, 401, 402, 403, 409, 429, 503),
)
async def create_video_generation(
    *,
    body: RequestBody,
    key: AuthenticatedKey,
    tasks: TaskServiceDep,
    services: ServicesDep,
    metrics: MetricsDep,
    submissions: SubmissionsDep,
    idempotency_key: IdempotencyKey = None,
) -> Response:
    # The probe may take its whole timeout: it runs on the gate's threads, and
    # this request waits for it without holding one.
    submit = partial(
        tasks.submit_idempotent,
        key=key,
        submission=to_submission(body),
        idempotency_key=idempotency_key,
    )
    submitted = await submissions.run(key.id, submit)
    task = submitted.task
    response = task_response(services.renderer, task)
    if submitted.replayed:
        response.headers[REPLAYED_HEADER] = "true"
    else:
        metrics.observe_submission(factor=int(task.factor), credits_reserved=task.credits_reserved)
    return response
