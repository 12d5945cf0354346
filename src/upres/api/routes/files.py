"""GET and HEAD /v1/files/{token}: result downloads from local storage, with Range support."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Header, Path
from fastapi.responses import FileResponse
from starlette.responses import MalformedRangeHeader, RangeNotSatisfiable

from upres.api.deps import ServicesDep
from upres.api.openapi import PUBLIC_OPERATION, error_responses
from upres.errors import InvalidRequest, NotFound, RangeOutsideFile

router = APIRouter(tags=["Files"])

_VIDEO_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "The video (or a running task's JPEG preview)",
        "content": {"video/mp4": {}, "image/jpeg": {}},
    },
    206: {"description": "The requested byte range of the video", "content": {"video/mp4": {}}},
}
_PARAM = "Range"


def check_range(header: str | None, size: int) -> None:
    """Refuse, in the error envelope, what FileResponse would refuse in plain text.

    It decides with FileResponse's own parser (private, hence pinned by the
    tests), so the two cannot disagree. Raises InvalidRequest for a malformed
    header, RangeOutsideFile when no range starts inside the file.
    """
    if header is None:
        return
    try:
        FileResponse._parse_range_header(header, size)
    except MalformedRangeHeader as exc:
        raise InvalidRequest(f"Range header is malformed: {exc.content}", param=_PARAM) from exc
    except RangeNotSatisfiable as exc:
        raise RangeOutsideFile(
            f"Range is outside the file of {size} bytes", size=size, param=_PARAM
        ) from exc


@router.get(
    "/v1/files/{token}",
    operation_id="downloadResult",
    summary="Download a result video through its signed link",
    description="The link is the credential: it expires with the result (410 afterwards).",
    response_class=FileResponse,
    responses=_VIDEO_RESPONSES | error_responses(400, 404, 410, 416, bad_request=("bad_range",)),
    openapi_extra=PUBLIC_OPERATION,
)
@router.head(
    "/v1/files/{token}",
    operation_id="headResult",
    summary="The headers of a result download, without the video",
    response_class=FileResponse,
    responses=_VIDEO_RESPONSES | error_responses(400, 404, 410, 416, bad_request=("bad_range",)),
    openapi_extra=PUBLIC_OPERATION,
)
def download_result(
    token: Annotated[str, Path(description="Signed token from a task's `results`")],
    services: ServicesDep,
    range_: Annotated[str | None, Header(alias="Range", include_in_schema=False)] = None,
) -> FileResponse:
    if services.files is None:
        raise NotFound("Results are not served by this API")
    stored = services.files.open_signed(token)
    check_range(range_, stored.path.stat().st_size)
    # Results and uploads are mp4; a running task's preview is a JPEG.
    media_type = "image/jpeg" if stored.path.suffix == ".jpg" else "video/mp4"
    return FileResponse(stored.path, media_type=media_type, filename=stored.download_name)
