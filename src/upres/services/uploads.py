"""Upload use cases: receive a video streamed from a client, probe it, keep it
until it expires, and resolve the ``upres-upload://`` URLs that name it.

A body is spooled to a scratch file chunk by chunk (never whole in memory) and
counted as it arrives, so a body over the limit is refused as soon as it
passes it. Nothing is kept of a body that is refused or is not a video.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterable, Awaitable, Callable, Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Protocol

from anyio import to_thread

from upres.clock import Clock, utc_now
from upres.domain.accounts import ApiKey
from upres.domain.media import VideoInfo
from upres.domain.records import NewTask
from upres.domain.uploads import Upload, is_upload_id, kept_input_id, new_upload_id, upload_id_of
from upres.errors import FetchError, NotFound, RequestTooLarge
from upres.services.estimates import ProbedVideo
from upres.services.tasks import check_duration

MAX_FILENAME = 255
UPLOAD_GONE = "No such upload for this key; uploads expire {ttl} after they are sent"

FileProber = Callable[[Path], VideoInfo]
"""Probes a local file. Raises MediaError when it is not a usable video."""

OnThread = Callable[[Callable[[], Upload]], Awaitable[Upload]]
"""Runs the blocking part of an upload (its probe and store) off the event loop."""


class UploadRecords(Protocol):
    def add_upload(self, upload: Upload) -> None: ...
    def forget_upload(self, upload_id: str) -> None: ...
    def get_upload(self, upload_id: str, *, account_id: str) -> Upload:
        """Raises NotFound for an unknown upload or another account's."""
        ...


class UploadStorage(Protocol):
    """Where upload bytes go: the result storage (``ResultStorage``)."""

    def put(self, src: Path, key: str) -> None: ...
    def delete(self, key: str) -> None: ...
    def url(self, key: str, *, expires_at: datetime) -> str: ...


class UploadService:
    """Uploads of authenticated keys; the constructor is the whole configuration.

    ``max_bytes`` bounds a body (``UPRES_MAX_INPUT_BYTES``), ``ttl_s`` how long
    an upload is kept (``UPRES_RESULT_TTL_S``), ``scratch_dir`` where bodies
    are spooled while they arrive.
    """

    def __init__(
        self,
        *,
        records: UploadRecords,
        storage: UploadStorage,
        probe: FileProber,
        scratch_dir: Path,
        max_bytes: int,
        ttl_s: int,
        clock: Clock = utc_now,
    ) -> None:
        self._records = records
        self._storage = storage
        self._probe = probe
        self._scratch = scratch_dir
        self._max_bytes = max_bytes
        self._ttl = timedelta(seconds=ttl_s)
        self._clock = clock

    def check_size(self, size: int | None) -> None:
        """Raises RequestTooLarge when ``size`` bytes are over the upload limit."""
        if size is not None and size > self._max_bytes:
            raise RequestTooLarge(f"The upload is over the limit of {self._max_bytes} bytes")

    async def receive(
        self,
        *,
        key: ApiKey,
        chunks: AsyncIterable[bytes],
        declared_bytes: int | None,
        filename: str | None,
        on_thread: OnThread = to_thread.run_sync,
    ) -> Upload:
        """Spool, probe and store a body (the probe and the store through
        ``on_thread``); the stored upload.

        Raises RequestTooLarge (declared or counted over the limit), the
        prober's MediaError (not a video, over the frame or duration limits),
        ServiceUnavailable when storage fails. Keeps nothing when it raises.
        """
        self.check_size(declared_bytes)
        with self.scratch_file() as spool:
            await self._spool(chunks, spool)
            accept = partial(self._accept, key=key, path=spool, filename=filename)
            return await on_thread(accept)

    @contextmanager
    def scratch_file(self) -> Iterator[Path]:
        """A fresh path in the scratch folder, removed afterwards if anything wrote it."""
        self._scratch.mkdir(parents=True, exist_ok=True)
        path = self._scratch / f"upload-{uuid.uuid4().hex}.part"
        try:
            yield path
        finally:
            path.unlink(missing_ok=True)

    def keep_input(self, *, task: NewTask, path: Path, info: ProbedVideo) -> Upload | None:
        """Keep the input ``task``'s probe downloaded whole into ``path`` (if it did)
        as the task's upload (``kept_input_id``), where its worker reads it; None
        when there is nothing to keep. Raises ServiceUnavailable when storage fails.
        """
        if not path.exists():
            return None
        return self._store_new(
            upload_id=kept_input_id(task.id),
            account_id=task.account_id,
            filename=None,
            path=path,
            info=info,
        )

    def discard(self, upload: Upload) -> None:
        """Remove an upload that no task will read (its task was never created)."""
        self._records.forget_upload(upload.id)
        self._storage.delete(upload.storage_key)

    def get(self, *, key: ApiKey, upload_id: str) -> Upload:
        """Raises NotFound for a malformed, unknown, foreign or expired upload."""
        if not is_upload_id(upload_id):
            raise NotFound("Upload not found")
        upload = self._records.get_upload(upload_id, account_id=key.account_id)
        if upload.expires_at <= self._clock():
            raise NotFound("Upload not found")
        return upload

    def upload_for(self, *, account_id: str, url: str) -> Upload:
        """The upload ``url`` names (``UploadLookup`` of the task service).

        Raises FetchError (code video_probe_failed) when the account has no
        such upload, or it has expired.
        """
        upload_id = upload_id_of(url)
        try:
            if upload_id is None:
                raise NotFound("Upload not found")
            upload = self._records.get_upload(upload_id, account_id=account_id)
        except NotFound as exc:
            raise FetchError(UPLOAD_GONE.format(ttl=self._ttl)) from exc
        if upload.expires_at <= self._clock():
            raise FetchError(UPLOAD_GONE.format(ttl=self._ttl))
        return upload

    def link(self, upload: Upload) -> str:
        """A download link to the upload's bytes, valid while it lives."""
        return self._storage.url(upload.storage_key, expires_at=upload.expires_at)

    async def _spool(self, chunks: AsyncIterable[bytes], path: Path) -> None:
        size = 0
        with path.open("wb") as out:
            async for chunk in chunks:
                size += len(chunk)
                self.check_size(size)
                out.write(chunk)

    def _accept(self, *, key: ApiKey, path: Path, filename: str | None) -> Upload:
        info = self._probe(path)
        check_duration(info)
        return self._store_new(
            upload_id=new_upload_id(),
            account_id=key.account_id,
            filename=_clean_filename(filename),
            path=path,
            info=info,
        )

    def _store_new(
        self,
        *,
        upload_id: str,
        account_id: str,
        filename: str | None,
        path: Path,
        info: ProbedVideo,
    ) -> Upload:
        """Record the probed file at ``path`` as a new upload living ``ttl`` from now."""
        now = self._clock()
        upload = Upload(
            id=upload_id,
            account_id=account_id,
            filename=filename,
            size_bytes=path.stat().st_size,
            duration_s=info.duration_s,
            width=info.width,
            height=info.height,
            frame_count=info.frame_count,
            average_fps=info.average_fps,
            created_at=now,
            expires_at=now + self._ttl,
        )
        self._store(upload, path)
        return upload

    def _store(self, upload: Upload, path: Path) -> None:
        """The file, then its record; neither when either fails."""
        self._storage.put(path, upload.storage_key)
        try:
            self._records.add_upload(upload)
        except BaseException:
            self._storage.delete(upload.storage_key)
            raise


def _clean_filename(filename: str | None) -> str | None:
    """A display name only: its last path segment, printable, at most 255 characters."""
    if not filename:
        return None
    name = "".join(ch for ch in filename.replace("\\", "/").rsplit("/", 1)[-1] if ch.isprintable())
    return name[:MAX_FILENAME] or None
