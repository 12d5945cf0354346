"""Uploads on the SQL database: recorded once probed and stored, read back per account."""

from __future__ import annotations

from datetime import datetime
from fractions import Fraction

from sqlalchemy import delete, select

from upres.clock import Clock
from upres.db.tables import TaskRow, UploadRow
from upres.db.unit import Database
from upres.domain.tasks import TaskStatus
from upres.domain.uploads import Upload, uploads_read_by
from upres.errors import NotFound

_BATCH = 500
_RUNNING = TaskStatus.PROCESSING.value


class SqlUploads:
    """The upload records of every account (a part of ``SqlTaskStore``)."""

    def __init__(self, db: Database, clock: Clock) -> None:
        self._db = db
        self._clock = clock

    def add_upload(self, upload: Upload) -> None:
        with self._db.write() as session:
            session.add(_row(upload))

    def get_upload(self, upload_id: str, *, account_id: str) -> Upload:
        """Raises NotFound for an unknown upload or another account's."""
        with self._db.read() as session:
            row = session.get(UploadRow, upload_id)
            if row is None or row.account_id != account_id:
                raise NotFound("Upload not found")
            return _upload(row)

    def expired_uploads(self, *, now: datetime) -> list[Upload]:
        """Uploads expired at or before ``now``, a bounded batch, leaving out those a
        running task may still read (``uploads_read_by``): an expiry never pulls
        the input from under a task being processed (its chunks read it in
        place); a pending task's expired upload goes, and the task fails when
        claimed."""
        with self._db.read() as session:
            running = session.execute(
                select(TaskRow.id, TaskRow.input_url).where(TaskRow.status == _RUNNING)
            )
            held = set().union(*(uploads_read_by(id_, url) for id_, url in running))
            query = (
                select(UploadRow)
                .where(UploadRow.expires_at <= now, UploadRow.id.not_in(held))
                .limit(_BATCH)
            )
            return [_upload(row) for row in session.scalars(query)]

    def forget_upload(self, upload_id: str) -> None:
        with self._db.write() as session:
            session.execute(delete(UploadRow).where(UploadRow.id == upload_id))


def _row(upload: Upload) -> UploadRow:
    return UploadRow(
        id=upload.id,
        account_id=upload.account_id,
        filename=upload.filename,
        size_bytes=upload.size_bytes,
        duration_s=upload.duration_s,
        width=upload.width,
        height=upload.height,
        frame_count=upload.frame_count,
        average_fps=None if upload.average_fps is None else str(upload.average_fps),
        created_at=upload.created_at,
        expires_at=upload.expires_at,
    )


def _upload(row: UploadRow) -> Upload:
    return Upload(
        id=row.id,
        account_id=row.account_id,
        filename=row.filename,
        size_bytes=row.size_bytes,
        duration_s=row.duration_s,
        width=row.width,
        height=row.height,
        frame_count=row.frame_count,
        average_fps=None if row.average_fps is None else Fraction(row.average_fps),
        created_at=row.created_at,
        expires_at=row.expires_at,
    )
