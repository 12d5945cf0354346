"""POST /v1/videos/generations/estimate: the price and time of a submission, reserving nothing."""

from __future__ import annotations

from functools import partial

from fastapi import APIRouter

from upres.api.deps import AuthenticatedKey, SubmissionsDep, TaskServiceDep
from upres.api.extension_schemas import EstimatePublic
from upres.api.openapi import error_responses
from upres.api.routes.generations import RequestBody, to_submission

router = APIRouter(tags=["Video Generation"])


@router.post(
    "/v1/videos/generations/estimate",
    operation_id="estimateVideoGeneration",
    summary="Price and processing time of a submission (upres extension)",
    description="Takes the body of `POST /v1/videos/generations`, validates and probes it "
    "the same way, and answers the credits it would reserve and the estimated processing "
    "time. Nothing is reserved and no task is created.",
    response_model=EstimatePublic,
    response_model_exclude_none=True,
    responses=error_responses(400, 401, 403, 429, 503),
)
async def estimate_video_generation(
    body: RequestBody, key: AuthenticatedKey, tasks: TaskServiceDep, submissions: SubmissionsDep
) -> EstimatePublic:
    # It probes like a submission, so it waits on the same bounded gate: a slow
    # input holds none of the threads that reads are answered on.
    estimate = partial(tasks.estimate, key=key, submission=to_submission(body))
    return EstimatePublic.of(await submissions.run(key.id, estimate))
