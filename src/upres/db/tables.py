"""The database schema: SQLAlchemy 2 typed declarative tables.

Credits are stored as integer micro-credits (``MICRO`` per credit) so ledger
sums are exact on every backend; conversion happens in ``upres.db.convert``.
Timestamps are stored as naive UTC and read back as aware UTC datetimes.
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import (
    JSON,
    BigInteger,
    DateTime,
    Dialect,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    TypeDecorator,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

MICRO = 1_000_000
# SQLite only auto-increments an INTEGER PRIMARY KEY; PostgreSQL gets a BIGINT.
AutoId = BigInteger().with_variant(Integer(), "sqlite")

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class UtcDateTime(TypeDecorator[datetime]):
    """An aware UTC datetime stored as a naive UTC timestamp (portable across backends)."""

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetimes are ambiguous; pass an aware UTC datetime")
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        return None if value is None else value.replace(tzinfo=UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


class AccountRow(Base):
    __tablename__ = "accounts"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    user_group: Mapped[str] = mapped_column(String(64))
    balance: Mapped[int] = mapped_column(BigInteger)
    webhook_secret: Mapped[str] = mapped_column(String(128))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)


class ApiKeyRow(Base):
    __tablename__ = "api_keys"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    account_id: Mapped[str] = mapped_column(ForeignKey("accounts.id"), index=True)
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    prefix: Mapped[str] = mapped_column(String(32))
    allowed_models: Mapped[list[str]] = mapped_column(JSON)
    revoked_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)


class TaskRow(Base):
    __tablename__ = "tasks"
    __table_args__ = (
        Index("ix_tasks_status_created_at", "status", "created_at"),
        Index("ix_tasks_status_lease_expires_at", "status", "lease_expires_at"),
        Index("ix_tasks_result_expires_at", "result_expires_at"),
    )

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    account_id: Mapped[str] = mapped_column(ForeignKey("accounts.id"), index=True)
    model: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16))
    progress: Mapped[int] = mapped_column(Integer)
    factor: Mapped[int] = mapped_column(Integer)
    input_url: Mapped[str] = mapped_column(Text)
    callback_url: Mapped[str | None] = mapped_column(Text)
    video_duration_s: Mapped[float]
    credits_reserved: Mapped[int] = mapped_column(BigInteger)
    credits_charged: Mapped[int | None] = mapped_column(BigInteger)
    estimated_time_s: Mapped[int] = mapped_column(Integer)
    user_group: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime)
    finished_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    result_key: Mapped[str | None] = mapped_column(Text)
    result_expires_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    error_code: Mapped[str | None] = mapped_column(String(64))
    error_message: Mapped[str | None] = mapped_column(Text)
    attempts: Mapped[int] = mapped_column(Integer)
    cancel_requested: Mapped[bool]
    lease_owner: Mapped[str | None] = mapped_column(String(128))
    lease_expires_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    # A pending task is not claimed before this (a retry backing off); None: at once.
    not_before: Mapped[datetime | None] = mapped_column(UtcDateTime)
    # A completed task's notes (upres.domain.tasks.Task.notes), one per line.
    notes: Mapped[str | None] = mapped_column(Text)
    fps: Mapped[float | None]
    # The output megapixels of one frame, reported by the heartbeats (fps x this:
    # the worker's megapixels per second).
    frame_mpx: Mapped[float | None]
    # The video codec of a completed task's result (upres.domain.media.VideoCodec).
    result_codec: Mapped[str | None] = mapped_column(String(8))
    # The look the task chose (upres.domain.tasks.Task.network, .denoise); NULL on
    # rows from before tasks chose, which run the worker's default.
    network: Mapped[str | None] = mapped_column(String(64))
    denoise: Mapped[int | None] = mapped_column(Integer)
    # The frame rate and slow motion the task chose (upres.domain.tasks.Task.frame_rate,
    # .slowmo); NULL when not chosen, and on rows from before tasks could.
    frame_rate: Mapped[float | None]
    slowmo: Mapped[int | None] = mapped_column(Integer)


class LedgerRow(Base):
    __tablename__ = "ledger"

    id: Mapped[int] = mapped_column(AutoId, primary_key=True, autoincrement=True)
    account_id: Mapped[str] = mapped_column(ForeignKey("accounts.id"), index=True)
    task_id: Mapped[str | None] = mapped_column(ForeignKey("tasks.id"), index=True)
    kind: Mapped[str] = mapped_column(String(16))
    amount: Mapped[int] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)


class OutboxRow(Base):
    """A callback to deliver. ``done_at`` is set once delivered or given up.

    ``lease_owner`` and ``lease_expires_at`` name the dispatcher that claimed
    it for an attempt and until when (both None while nobody holds it).
    ``message_id`` is its ``webhook-id``: the same on every retry, unique
    across databases, so receivers can dedupe on it.
    """

    __tablename__ = "callback_outbox"
    __table_args__ = (
        Index("ix_callback_outbox_due", "done_at", "next_attempt_at"),
        Index("ix_callback_outbox_message_id", "message_id", unique=True),
    )

    id: Mapped[int] = mapped_column(AutoId, primary_key=True, autoincrement=True)
    task_id: Mapped[str] = mapped_column(ForeignKey("tasks.id"), index=True)
    account_id: Mapped[str] = mapped_column(ForeignKey("accounts.id"))
    url: Mapped[str] = mapped_column(Text)
    body: Mapped[str] = mapped_column(Text)
    attempts: Mapped[int] = mapped_column(Integer)
    next_attempt_at: Mapped[datetime] = mapped_column(UtcDateTime)
    delivered: Mapped[bool]
    done_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    lease_owner: Mapped[str | None] = mapped_column(String(128))
    lease_expires_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    message_id: Mapped[str] = mapped_column(String(64))


class CallbackAttemptRow(Base):
    __tablename__ = "callback_attempts"

    id: Mapped[int] = mapped_column(AutoId, primary_key=True, autoincrement=True)
    outbox_id: Mapped[int] = mapped_column(ForeignKey("callback_outbox.id"), index=True)
    attempt: Mapped[int] = mapped_column(Integer)
    status_code: Mapped[int | None] = mapped_column(Integer)
    error: Mapped[str | None] = mapped_column(Text)
    delivered: Mapped[bool]
    at: Mapped[datetime] = mapped_column(UtcDateTime)


class ThroughputRow(Base):
    """Measured upscaling speed per factor and network (EWMA of output megapixels
    per second); network ``''`` holds what was measured before networks were told
    apart (``upres.db.throughput.UNKNOWN_NETWORK``)."""

    __tablename__ = "throughput"

    factor: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    network: Mapped[str] = mapped_column(String(64), primary_key=True)
    mpix_per_s: Mapped[float]
    samples: Mapped[int] = mapped_column(Integer)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime)


class IdempotencyRow(Base):
    """An ``Idempotency-Key`` seen on a submission, kept 24 h, and the task it made."""

    __tablename__ = "idempotency_keys"

    account_id: Mapped[str] = mapped_column(ForeignKey("accounts.id"), primary_key=True)
    key: Mapped[str] = mapped_column(String(255), primary_key=True)
    request_hash: Mapped[str] = mapped_column(String(64))
    task_id: Mapped[str] = mapped_column(ForeignKey("tasks.id"))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, index=True)


class UploadRow(Base):
    """A video uploaded by an account, stored under ``uploads/<id>.mp4`` until ``expires_at``."""

    __tablename__ = "uploads"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    account_id: Mapped[str] = mapped_column(ForeignKey("accounts.id"), index=True)
    filename: Mapped[str | None] = mapped_column(String(255))
    size_bytes: Mapped[int] = mapped_column(BigInteger)
    duration_s: Mapped[float]
    width: Mapped[int] = mapped_column(Integer)
    height: Mapped[int] = mapped_column(Integer)
    frame_count: Mapped[int | None] = mapped_column(Integer)
    average_fps: Mapped[str | None] = mapped_column(String(32))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    expires_at: Mapped[datetime] = mapped_column(UtcDateTime, index=True)


class ChunkRow(Base):
    """One frame range of a chunked task (``upres.domain.chunks``), leased like a task.

    ``frames_done`` and ``fps`` are the latest heartbeat's; ``part_key`` is
    set once the chunk is done and its part stored.
    """

    __tablename__ = "chunks"
    __table_args__ = (
        Index("ix_chunks_status_not_before", "status", "not_before"),
        Index("ix_chunks_status_lease_expires_at", "status", "lease_expires_at"),
    )

    task_id: Mapped[str] = mapped_column(ForeignKey("tasks.id"), primary_key=True)
    index: Mapped[int] = mapped_column("chunk_index", Integer, primary_key=True)
    first_frame: Mapped[int] = mapped_column(Integer)
    frame_count: Mapped[int] = mapped_column(Integer)
    start_s: Mapped[float]
    end_s: Mapped[float]
    status: Mapped[str] = mapped_column(String(16))
    attempts: Mapped[int] = mapped_column(Integer)
    lease_owner: Mapped[str | None] = mapped_column(String(128))
    lease_expires_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    not_before: Mapped[datetime | None] = mapped_column(UtcDateTime)
    frames_done: Mapped[int] = mapped_column(Integer)
    fps: Mapped[float | None]
    part_key: Mapped[str | None] = mapped_column(Text)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime)
