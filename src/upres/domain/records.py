"""The records the store hands between the service, the queue and the callbacks.

Plain frozen values (no I/O): a submission ready to insert, a worker's claim
and heartbeat, callback outbox items and attempts, keys and idempotency
records.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Protocol

from upres.domain.accounts import ApiKey
from upres.domain.tasks import Factor, Task


@dataclass(frozen=True, kw_only=True)
class NewTask:
    """A validated, probed, priced submission, ready to insert."""

    id: str
    account_id: str
    model: str
    factor: Factor
    input_url: str
    callback_url: str | None
    video_duration_s: float
    credits_reserved: float
    estimated_time_s: int
    user_group: str
    created_at: datetime
    network: str | None = None
    denoise: int | None = None
    frame_rate: float | None = None
    slowmo: int | None = None


@dataclass(frozen=True, kw_only=True)
class Claim:
    """A worker's lease on one attempt of a task. Heartbeats renew it by ``lease_s``."""

    task: Task
    worker_id: str
    attempt: int
    lease_expires_at: datetime
    lease_s: float = 30.0


@dataclass(frozen=True, kw_only=True)
class Heartbeat:
    """What a heartbeat tells the worker: stop when ``cancelled``."""

    cancelled: bool
    lease_expires_at: datetime


@dataclass(frozen=True, kw_only=True)
class OutboxItem:
    """A callback to deliver: the task's public JSON body, frozen at settlement,
    and its ``webhook-id`` (``message_id``), the same on each of its retries."""

    id: int
    task_id: str
    account_id: str
    url: str
    body: str
    attempts: int
    next_attempt_at: datetime
    message_id: str


@dataclass(frozen=True, kw_only=True)
class StoredKey:
    """A key and its stored hash, so the caller can compare in constant time."""

    key: ApiKey
    key_hash: str


IDEMPOTENCY_WINDOW = timedelta(hours=24)
"""How long an ``Idempotency-Key`` replays its first submission."""


@dataclass(frozen=True, kw_only=True)
class IdempotencyRecord:
    """An ``Idempotency-Key`` of a submission and the hash of the request it came with."""

    key: str
    request_hash: str


@dataclass(frozen=True, kw_only=True)
class IdempotentHit:
    """A previous submission with the same ``Idempotency-Key``."""

    request_hash: str
    task: Task


@dataclass(frozen=True, kw_only=True)
class CallbackAttempt:
    """One delivery try of an outbox item, recorded whatever its outcome."""

    outbox_id: int
    attempt: int
    status_code: int | None
    error: str | None
    delivered: bool
    at: datetime


class CallbackBody(Protocol):
    """Renders the JSON body a callback carries (the task query response)."""

    def __call__(self, task: Task) -> str: ...


@dataclass(frozen=True, kw_only=True)
class Backlog:
    """Since when the oldest work has waited for a worker (None: nothing waits),
    and how fast each worker runs now (frames per second, and output megapixels
    per second where its heartbeats told the frame size, by worker id)."""

    oldest_pending_task: datetime | None
    oldest_pending_chunk: datetime | None
    worker_fps: dict[str, float]
    worker_mpx_per_s: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True, kw_only=True)
class MeasuredThroughput:
    """How fast one network upscales at one factor, as the workers measured it:
    output megapixels per second (network ``''``: measured before networks were
    told apart)."""

    factor: Factor
    network: str
    mpix_per_s: float
