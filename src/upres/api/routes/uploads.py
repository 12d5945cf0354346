"""POST /v1/uploads (a video streamed from the client's disk) and GET /v1/uploads/{id}."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Request

from upres.api.deps import AuthenticatedKey, SubmissionsDep, UploadServiceDep
from upres.api.extension_schemas import UploadPublic
from upres.api.middleware import declared_length
from upres.api.openapi import error_responses

router = APIRouter(tags=["Uploads"])
UPLOADS_PATH = "/v1/uploads"

_BINARY = {"schema": {"type": "string", "format": "binary"}}
_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "description": "The video file's bytes, as they are (not a multipart form)",
        "content": {"video/mp4": _BINARY, "application/octet-stream": _BINARY},
    }
}
_DESCRIPTION = """\
Stores a video sent from the client's disk, for `video_urls`: the answer's `url`
(`upres-upload://<id>`) is accepted by `POST /v1/videos/generations` and its
estimate, for this key's account only. The body is the file itself
(`curl --data-binary @clip.mp4`), at most `UPRES_MAX_INPUT_BYTES` (413
`request_too_large` past it). It is probed on arrival (400 `video_probe_failed`
when it is not a video; nothing is kept). Uploads are deleted when they expire,
like results (`UPRES_RESULT_TTL_S`, 24 h by default). Not resumable: a failed
upload is sent again whole.
"""


@router.post(
    UPLOADS_PATH,
    operation_id="createUpload",
    summary="Upload a video for a task (upres extension)",
    description=_DESCRIPTION,
    response_model=UploadPublic,
    response_model_exclude_none=True,
    responses=error_responses(400, 401, 404, 413, 429, 503, bad_request=("probe_failed",)),
    openapi_extra=_BODY,
)
async def create_upload(
    request: Request,
    key: AuthenticatedKey,
    uploads: UploadServiceDep,
    submissions: SubmissionsDep,
    filename: Annotated[
        str | None, Query(max_length=1024, description="The file's name, for display")
    ] = None,
) -> UploadPublic:
    # An upload holds a submission slot of its key from its first byte: bodies
    # trickling in are bounded as probes are, and its probe runs on their threads.
    with submissions.admitted(key.id) as on_thread:
        upload = await uploads.receive(
            key=key,
            chunks=request.stream(),
            declared_bytes=declared_length(request.scope),
            filename=filename,
            on_thread=on_thread,
        )
    return UploadPublic.of(upload, download_url=uploads.link(upload))


@router.get(
    UPLOADS_PATH + "/{upload_id}",
    operation_id="getUpload",
    summary="An upload of this key's account (upres extension)",
    response_model=UploadPublic,
    response_model_exclude_none=True,
    responses=error_responses(401, 404, 429),
)
def get_upload(
    upload_id: Annotated[str, Path(examples=["upload-3k9x2qa7m4v8b1cd"])],
    key: AuthenticatedKey,
    uploads: UploadServiceDep,
) -> UploadPublic:
    upload = uploads.get(key=key, upload_id=upload_id)
    return UploadPublic.of(upload, download_url=uploads.link(upload))
