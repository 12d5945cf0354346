"""Uploads: videos sent from a client's disk, and the ``upres-upload://`` URLs naming them.

An upload is referenced in ``video_urls`` as ``upres-upload://<id>``: a name, not
an address, so accepting it opens no network path. Only the account that
uploaded it may use it, and it lives in result storage under ``storage_key``.
"""

from __future__ import annotations

import hashlib
import re
import secrets
import string
from dataclasses import dataclass
from datetime import datetime
from fractions import Fraction

from upres.domain.storage_keys import upload_key

UPLOAD_SCHEME = "upres-upload"
_PREFIX = f"{UPLOAD_SCHEME}://"
_ALPHABET = string.ascii_lowercase + string.digits
_ID = re.compile(r"^upload-[a-z0-9]{16}$")


@dataclass(frozen=True, kw_only=True)
class Upload:
    """One stored upload, with the facts its probe found."""

    id: str
    account_id: str
    filename: str | None
    size_bytes: int
    duration_s: float
    width: int
    height: int
    frame_count: int | None
    average_fps: Fraction | None
    created_at: datetime
    expires_at: datetime

    @property
    def url(self) -> str:
        return upload_url(self.id)

    @property
    def storage_key(self) -> str:
        return upload_key(self.id)


def new_upload_id() -> str:
    return "upload-" + "".join(secrets.choice(_ALPHABET) for _ in range(16))


def kept_input_id(task_id: str) -> str:
    """The upload under which the API keeps a task's input that its probe downloaded
    whole (the input's server ignores Range): named after the task, so that a
    worker on any machine finds it without a word from the API, and reads it
    instead of downloading it a second time."""
    digest = hashlib.sha256(task_id.encode()).digest()
    return "upload-" + "".join(_ALPHABET[byte % len(_ALPHABET)] for byte in digest[:16])


def uploads_read_by(task_id: str, input_url: str) -> frozenset[str]:
    """The uploads a task may read its input from while it runs (a chunked task's
    chunks read it in place): the one its URL names, and the one its input
    may be kept under."""
    named = upload_id_of(input_url)
    return frozenset({kept_input_id(task_id)} | ({named} if named is not None else set()))


def is_upload_id(upload_id: str) -> bool:
    return _ID.fullmatch(upload_id) is not None


def upload_url(upload_id: str) -> str:
    return _PREFIX + upload_id


def is_upload_url(url: str) -> bool:
    """True for any ``upres-upload://`` URL, well-formed or not."""
    return url.strip().lower().startswith(_PREFIX)


def upload_id_of(url: str) -> str | None:
    """The upload id an ``upres-upload://<id>`` URL names; None when it names none."""
    if not is_upload_url(url):
        return None
    upload_id = url.strip()[len(_PREFIX) :]
    return upload_id if is_upload_id(upload_id) else None
