"""Bodies of upres's extensions to the hosted API: uploads, estimates, task lists."""

from __future__ import annotations

from fractions import Fraction
from typing import Literal

from pydantic import BaseModel, Field
from pydantic.json_schema import SkipJsonSchema

from upres.api.schemas import TaskPublic, whole_seconds
from upres.domain.tasks import API_MODEL
from upres.domain.uploads import Upload
from upres.services.tasks import Estimate


class UploadPublic(BaseModel):
    """A stored upload: put ``url`` in ``video_urls`` to upscale it."""

    id: str = Field(examples=["upload-3k9x2qa7m4v8b1cd"])
    object: Literal["upload"] = "upload"
    url: str = Field(
        description="Use in `video_urls`; only this key's account may",
        examples=["upres-upload://upload-3k9x2qa7m4v8b1cd"],
    )
    download_url: str = Field(description="A signed link to the uploaded bytes, until expiry")
    filename: str | SkipJsonSchema[None] = None
    bytes: int
    video_duration: int = Field(description="Video duration (seconds)")
    width: int
    height: int
    created: int
    expires_at: int = Field(description="Unix time when the upload is deleted")

    @classmethod
    def of(cls, upload: Upload, *, download_url: str) -> UploadPublic:
        return cls(
            id=upload.id,
            url=upload.url,
            download_url=download_url,
            filename=upload.filename,
            bytes=upload.size_bytes,
            video_duration=whole_seconds(upload.duration_s),
            width=upload.width,
            height=upload.height,
            created=int(upload.created_at.timestamp()),
            expires_at=int(upload.expires_at.timestamp()),
        )


class EstimatePublic(BaseModel):
    """What a submission would reserve and take; nothing is reserved."""

    object: Literal["video.generation.estimate"] = "video.generation.estimate"
    model: str = API_MODEL
    upscale_factor: str = Field(json_schema_extra={"enum": ["1", "2", "4"]})
    network: str = Field(description="The network the task would run, chosen or the default")
    denoise: int | SkipJsonSchema[None] = Field(
        default=None, description="The network's denoise level, when chosen"
    )
    frame_rate: float | SkipJsonSchema[None] = Field(
        default=None, description="The output's frame rate, when chosen"
    )
    slowmo: int | SkipJsonSchema[None] = Field(
        default=None, description="How many times slower the output runs, when chosen"
    )
    video_duration: int = Field(description="Video duration (seconds), as the task would bill")
    billing_rule: Literal["per_second"] = "per_second"
    credits: float = Field(ge=0, description="Credits a submission would reserve")
    estimated_time: int = Field(ge=0, description="Estimated processing time (seconds)")

    @classmethod
    def of(cls, estimate: Estimate) -> EstimatePublic:
        return cls(
            upscale_factor=str(int(estimate.factor)),
            network=estimate.look.network,
            denoise=estimate.look.denoise,
            frame_rate=_rate(estimate.frame_rate.fps),
            slowmo=estimate.frame_rate.slowmo if estimate.frame_rate.slowmo != 1 else None,
            video_duration=whole_seconds(estimate.video_duration_s),
            credits=estimate.credits,
            estimated_time=estimate.estimated_time_s,
        )


def _rate(fps: Fraction | None) -> float | None:
    """A rate as clients wrote it (59.94 for 60000/1001)."""
    return None if fps is None else round(float(fps), 3)


class TaskListItem(TaskPublic):
    """A task as GET /v1/tasks/{id} shows it, plus where its source video is."""

    upscale_factor: str = Field(json_schema_extra={"enum": ["1", "2", "4"]})
    input_url: str = Field(description="The task's `video_urls[0]`")
    fps: float | SkipJsonSchema[None] = Field(
        default=None, description="Frames upscaled per second, while processing"
    )
    playable_url: str | SkipJsonSchema[None] = Field(
        default=None,
        description="When completed in a codec browsers cannot play (HEVC): a small H.264 "
        "copy of the result, for watching; `results` keeps the real one",
    )
    preview_url: str | SkipJsonSchema[None] = Field(
        default=None,
        description="While processing: a JPEG of the latest upscaled frame, renewed every "
        "few seconds (404 until the first one)",
    )
    source_url: str | SkipJsonSchema[None] = Field(
        default=None, description="A link that plays the source video, while there is one"
    )


class TaskList(BaseModel):
    """GET /v1/tasks: the key's newest tasks, newest first."""

    object: Literal["list"] = "list"
    data: list[TaskListItem]
