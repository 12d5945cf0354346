"""Deletes result files once their links have expired, and the parts of
chunked tasks once their tasks ended."""

from __future__ import annotations

import logging
import threading
from datetime import datetime
from typing import Protocol

from upres.clock import Clock, utc_now
from upres.domain.chunks import Chunk, part_keys_ever_written
from upres.domain.storage_keys import chunk_source_key, playable_key, preview_key
from upres.domain.tasks import Task
from upres.domain.uploads import Upload
from upres.storage.base import ResultStorage

log = logging.getLogger(__name__)


class ExpiringResults(Protocol):
    """The part of the store the janitor needs for results."""

    def expired_results(self, *, now: datetime) -> list[Task]:
        """Completed tasks whose result key is still set and expired at or before ``now``."""
        ...

    def forget_result(self, task_id: str) -> None:
        """Drop the result key (the file is gone); the expiry stays to tell clients why."""
        ...


class ChunkLeftovers(Protocol):
    """The chunks of ended tasks (``SqlChunks``)."""

    def chunk_leftovers(self, *, limit: int = 500) -> list[Chunk]: ...
    def forget_chunks(self, task_id: str) -> None: ...


class ExpiringUploads(Protocol):
    """The part of the store the janitor needs for uploads."""

    def expired_uploads(self, *, now: datetime) -> list[Upload]:
        """Uploads that expired at or before ``now``, a bounded batch (the next
        pass takes the rest)."""
        ...

    def forget_upload(self, upload_id: str) -> None:
        """Delete the upload's record (its file is gone)."""
        ...


class Janitor:
    """Removes expired results and uploads, and the parts of ended chunked
    tasks: the file first, then the record of it."""

    def __init__(
        self,
        store: ExpiringResults,
        storage: ResultStorage,
        clock: Clock = utc_now,
        *,
        uploads: ExpiringUploads | None = None,
        chunks: ChunkLeftovers | None = None,
    ) -> None:
        self._store = store
        self._storage = storage
        self._clock = clock
        self._uploads = uploads
        self._chunks = chunks

    def run_once(self) -> int:
        """Delete every result and upload past its expiry; return how many were removed."""
        removed = 0
        for task in self._store.expired_results(now=self._clock()):
            if task.result_key is not None:
                self._storage.delete(task.result_key)
                self._storage.delete(playable_key(task.result_key))
            self._store.forget_result(task.id)
            removed += 1
        removed += self._remove_uploads()
        removed += self._remove_parts()
        if removed:
            log.info("janitor removed %d expired results, uploads and chunk parts", removed)
        return removed

    def _remove_uploads(self) -> int:
        if self._uploads is None:
            return 0
        expired = self._uploads.expired_uploads(now=self._clock())
        for upload in expired:
            self._storage.delete(upload.storage_key)
            self._uploads.forget_upload(upload.id)
        return len(expired)

    def _remove_parts(self) -> int:
        """Delete the parts (and stored input and last preview) of chunked tasks that ended
        (failed, cancelled, or completed by a finaliser that died before
        deleting them)."""
        if self._chunks is None:
            return 0
        leftovers = self._chunks.chunk_leftovers()
        for chunk in leftovers:
            for key in part_keys_ever_written(chunk):
                self._storage.delete(key)
        for task_id in {chunk.task_id for chunk in leftovers}:
            self._storage.delete(preview_key(task_id))
            self._storage.delete(chunk_source_key(task_id))
            self._chunks.forget_chunks(task_id)
        return len(leftovers)

    def run_forever(self, stop: threading.Event, *, interval_s: float) -> None:
        """Call ``run_once`` every ``interval_s`` until ``stop`` is set (errors are logged)."""
        while not stop.is_set():
            try:
                self.run_once()
            except Exception:  # a background loop must outlive any one failure
                log.exception("janitor pass failed; trying again later")
            stop.wait(interval_s)
