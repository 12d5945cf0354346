"""A worker's inputs, fetched once per task (a task run in one pass, the
planner and the join read a local copy), and ``chunk_source``: where a
chunked task's input lies in storage, which its chunks read in ranges."""

from __future__ import annotations

import shutil
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

from upres.domain.storage_keys import chunk_source_key, upload_key
from upres.domain.tasks import Task
from upres.domain.uploads import kept_input_id, upload_id_of
from upres.errors import InputRefused, NotFound
from upres.inputs.fetch import fetch
from upres.inputs.netpolicy import AddressPolicy
from upres.storage.base import ResultStorage


@dataclass(frozen=True, kw_only=True)
class FetchLimits:
    """How much and how long the runner may download an input."""

    max_bytes: int
    timeout_s: float


def chunk_source(task: Task, storage: ResultStorage) -> str:
    """The storage key a chunked task's input is read from, by its chunks and its
    join: its upload, else the input the API kept for it when that is stored,
    else the copy the planner stores under ``chunk_source_key``. An upload or
    kept input lives while the task runs (``SqlUploads.expired_uploads``),
    so the planner never stores a second copy of it.

    Raises StorageUnavailable when storage cannot be asked.
    """
    upload_id = upload_id_of(task.input_url)
    if upload_id is not None:
        return upload_key(upload_id)
    kept = upload_key(kept_input_id(task.id))
    return kept if storage.exists(kept) else chunk_source_key(task.id)


class InputCache:
    """The inputs of the last ``keep`` tasks this worker touched, under
    ``directory`` (one folder per task). The constructor is its whole
    configuration; one worker (one thread) uses it."""

    def __init__(
        self,
        *,
        storage: ResultStorage,
        policy: AddressPolicy,
        limits: FetchLimits,
        directory: Path,
        keep: int = 2,
    ) -> None:
        self._storage = storage
        self._policy = policy
        self._limits = limits
        self._directory = directory
        self._keep = keep
        self._held: OrderedDict[str, Path] = OrderedDict()

    def get(self, task: Task, *, stored: str | None = None) -> Path:
        """The task's input as a local file, fetched once while it stays
        cached: from the storage key ``stored`` when given, else an upload
        from storage and anything else from its URL.

        Raises as ``fetch``; InputRefused when the upload or ``stored`` is gone.
        """
        held = self._held.get(task.id)
        if held is not None and held.exists():
            self._held.move_to_end(task.id)
            return held
        folder = self._directory / task.id
        folder.mkdir(parents=True, exist_ok=True)
        if stored is None:
            path = self._fetch(task, folder / "input")
        else:
            path = self._copy(stored, folder / "input", gone="The task's stored input is gone")
        self._held[task.id] = path
        while len(self._held) > self._keep:
            self.drop(next(iter(self._held)))
        return path

    def drop(self, task_id: str) -> None:
        """Forget a task's input (deleted from disk)."""
        self._held.pop(task_id, None)
        shutil.rmtree(self._directory / task_id, ignore_errors=True)

    def clear(self) -> None:
        """Forget every input, and the cache's folder with them."""
        self._held.clear()
        shutil.rmtree(self._directory, ignore_errors=True)

    def _fetch(self, task: Task, dest: Path) -> Path:
        """An upload is read from storage, and so is an input the API's probe
        already downloaded whole (kept under ``kept_input_id``); anything else
        is downloaded."""
        upload_id = upload_id_of(task.input_url)
        if upload_id is None:
            if self._read_kept_input(task, dest):
                return dest
            return fetch(
                task.input_url,
                dest,
                policy=self._policy,
                max_bytes=self._limits.max_bytes,
                timeout_s=self._limits.timeout_s,
            ).path
        return self._copy(upload_key(upload_id), dest, gone="The uploaded video has expired")

    def _read_kept_input(self, task: Task, dest: Path) -> bool:
        """Copies the input the API kept for ``task`` to ``dest``; False when it kept none."""
        try:
            self._copy(upload_key(kept_input_id(task.id)), dest, gone="not kept")
        except InputRefused:
            return False
        return True

    def _copy(self, key: str, dest: Path, *, gone: str) -> Path:
        partial = dest.with_name(dest.name + ".part")
        try:
            self._storage.copy_to(key, partial)
        except NotFound as exc:
            raise InputRefused(gone) from exc
        partial.replace(dest)
        return dest
