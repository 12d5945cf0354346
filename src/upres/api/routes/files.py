"""GET /v1/files/{token}: result downloads from local storage, with Range support."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path
from fastapi.responses import FileResponse

from upres.api.deps import ServicesDep
from upres.api.openapi import PUBLIC_OPERATION, error_responses
from upres.errors import NotFound

router = APIRouter(tags=["Files"])

_VIDEO_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {"description": "The video", "content": {"video/mp4": {}}},
    206: {"description": "The requested byte range of the video", "content": {"video/mp4": {}}},
    416: {"description": "The requested range is outside the file"},
}


@router.get(
    "/v1/files/{token}",
    operation_id="downloadResult",
    summary="Download a result video through its signed link",
    description="The link is the credential: it expires with the result (410 afterwards).",
    response_class=FileResponse,
    responses=_VIDEO_RESPONSES | error_responses(404, 410),
    openapi_extra=PUBLIC_OPERATION,
)
def download_result(
    token: Annotated[str, Path(description="Signed token from a task's `results`")],
    services: ServicesDep,
) -> FileResponse:
    if services.files is None:
        raise NotFound("Results are not served by this API")
    path = services.files.open_signed(token)
    return FileResponse(path, media_type="video/mp4", filename=path.name)
