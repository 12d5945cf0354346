"""Tasks: status, upscale factor, the task record and the task id format."""

from __future__ import annotations

import re
import secrets
import string
from dataclasses import dataclass
from datetime import datetime
from enum import IntEnum, StrEnum

from upres.domain.framerate import FrameRateRequest, exact_rate
from upres.domain.media import VideoCodec
from upres.errors import InvalidTaskId

API_MODEL = "topaz-video-upscale"
TASK_ID_PREFIX = "task-unified-"
_ID_ALPHABET = string.ascii_lowercase + string.digits
_ID_PATTERN = re.compile(r"^task-unified-\d+-[a-z0-9]{8}$")


class Factor(IntEnum):
    """Output size multiplier. ``ENHANCE`` keeps the size and only restores."""

    ENHANCE = 1
    X2 = 2
    X4 = 4

    @classmethod
    def lenient(cls, value: object) -> Factor:
        """Parse ``"1"``/``"2"``/``"4"`` or the numbers; anything else is ``X2``.

        The hosted API documents that invalid values silently fall back to 2.
        """
        if isinstance(value, bool):
            return cls.X2
        if isinstance(value, int | float) and float(value) in (1.0, 2.0, 4.0):
            return cls(int(value))
        if isinstance(value, str) and value.strip() in ("1", "2", "4"):
            return cls(int(value.strip()))
        return cls.X2


class TaskStatus(StrEnum):
    """Where a task stands. ``cancelled`` is upres's addition to the spec's four."""

    PENDING = "pending"
    PROCESSING = "processing"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def is_terminal(self) -> bool:
        return self in _TERMINAL

    @property
    def can_cancel(self) -> bool:
        return not self.is_terminal


_TERMINAL = frozenset({TaskStatus.COMPLETED, TaskStatus.FAILED, TaskStatus.CANCELLED})


def new_task_id(created: int) -> str:
    """A fresh id of the spec's form ``task-unified-<unix>-<8 chars>``."""
    suffix = "".join(secrets.choice(_ID_ALPHABET) for _ in range(8))
    return f"{TASK_ID_PREFIX}{created}-{suffix}"


def check_task_id(task_id: str) -> str:
    """Return ``task_id`` unchanged.

    Raises InvalidTaskId when it does not start with ``task-unified-``.
    """
    if not task_id.startswith(TASK_ID_PREFIX):
        raise InvalidTaskId(f"Invalid task ID format: {task_id!r}", param="task_id")
    return task_id


def is_well_formed_task_id(task_id: str) -> bool:
    """True when ``task_id`` matches the full id pattern upres generates."""
    return _ID_PATTERN.fullmatch(task_id) is not None


@dataclass(frozen=True, kw_only=True)
class TaskError:
    """Why a task failed: a string business code and a human message."""

    code: str
    message: str


@dataclass(frozen=True, kw_only=True)
class Task:
    """One upscaling task as the system of record holds it."""

    id: str
    account_id: str
    model: str
    status: TaskStatus
    progress: int
    factor: Factor
    input_url: str
    callback_url: str | None
    video_duration_s: float
    credits_reserved: float
    credits_charged: float | None
    estimated_time_s: int
    user_group: str
    created_at: datetime
    updated_at: datetime
    finished_at: datetime | None
    result_key: str | None
    result_expires_at: datetime | None
    error: TaskError | None
    attempts: int
    cancel_requested: bool
    # What the engine decided for the user about the output (a codec chosen
    # for an HDR source, deinterlacing): a completed task reports them.
    notes: tuple[str, ...] = ()
    fps: float | None = None
    """Frames upscaled per second, as the latest heartbeat measured them."""
    result_codec: VideoCodec | None = None
    """The video codec the completed result was written in (None before it completes,
    and for tasks completed before upres recorded it)."""
    network: str | None = None
    """The network that upscales it (a registry id), chosen or the default when it
    was submitted; None for a task from before tasks chose (the worker's default)."""
    denoise: int | None = None
    """The network's denoise level, when it has levels and one was chosen."""
    frame_rate: float | None = None
    """The output's frame rate the task chose (None: the source's)."""
    slowmo: int | None = None
    """How many times slower the output runs, when chosen (None: 1)."""

    @property
    def frame_rate_request(self) -> FrameRateRequest:
        """The frame rate and slow motion it chose, as the engine takes them."""
        return chosen_frame_rate(self.frame_rate, self.slowmo)


def chosen_frame_rate(frame_rate: float | None, slowmo: int | None) -> FrameRateRequest:
    """The request a task's stored ``frame_rate`` and ``slowmo`` make (None: not
    chosen); they were checked by ``frame_rate_request`` when it was submitted."""
    fps = exact_rate(frame_rate) if frame_rate is not None else None
    return FrameRateRequest(fps=fps, slowmo=slowmo or 1)
