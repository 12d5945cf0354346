"""Chunks: a long task's frame ranges, each claimed, run and stored on its own.

A task whose source is longer than ``UPRES_CHUNK_SECONDS`` is planned into
chunks after probing; every worker, on any machine, claims any pending chunk
of any task. When the last one is done, one worker (the finaliser) joins the
parts into the result. Plain frozen values (no I/O).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Protocol

from upres.domain.storage_keys import chunk_output_key
from upres.domain.tasks import Task


class ChunkStatus(StrEnum):
    """Where a chunk stands. ``failed`` means for good: its task failed with it."""

    PENDING = "pending"
    PROCESSING = "processing"
    DONE = "done"
    FAILED = "failed"


class Span(Protocol):
    """One planned frame range of a source (``upres.pipeline.chunks.ChunkSpan``
    has this shape, and so does ``Chunk``)."""

    @property
    def index(self) -> int: ...
    @property
    def first_frame(self) -> int: ...
    @property
    def frame_count(self) -> int: ...
    @property
    def start_s(self) -> float: ...
    @property
    def end_s(self) -> float: ...


@dataclass(frozen=True, kw_only=True)
class Chunk:
    """One chunk as the system of record holds it. ``part_key`` is where its
    finished part lies in result storage (None until it is done);
    ``worker_id`` holds it while it runs and names who ran it once done."""

    task_id: str
    index: int
    first_frame: int
    frame_count: int
    start_s: float
    end_s: float
    status: ChunkStatus
    attempts: int
    frames_done: int
    part_key: str | None
    worker_id: str | None


@dataclass(frozen=True, kw_only=True)
class ChunkClaim:
    """A worker's lease on one attempt of a chunk; ``task`` as it was at the claim."""

    chunk: Chunk
    task: Task
    worker_id: str
    attempt: int
    lease_expires_at: datetime
    lease_s: float


def part_keys_ever_written(chunk: Chunk) -> tuple[str, ...]:
    """Every key an attempt of ``chunk`` may have stored a part under (one that
    died between storing and recording its part left it behind)."""
    return tuple(
        chunk_output_key(chunk.task_id, chunk.index, a) for a in range(1, chunk.attempts + 1)
    )
