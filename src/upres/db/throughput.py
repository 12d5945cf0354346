"""Measured upscaling throughput per factor, for ``estimated_time``."""

from __future__ import annotations

import math
from datetime import datetime

from sqlalchemy.exc import IntegrityError

from upres.clock import Clock
from upres.db.tables import ThroughputRow
from upres.db.unit import Database
from upres.domain.tasks import Factor
from upres.errors import ServiceUnavailable

# Weight of the newest measurement in the moving average: recent runs matter
# most (the hardware or model may change) without one odd run swinging it.
THROUGHPUT_WEIGHT = 0.3


class SqlThroughput:
    """An exponentially weighted moving average of output megapixels per second."""

    def __init__(self, db: Database, clock: Clock) -> None:
        self._db = db
        self._clock = clock

    def throughput(self, factor: Factor) -> float | None:
        with self._db.read() as session:
            row = session.get(ThroughputRow, int(factor))
            return None if row is None else row.mpix_per_s

    def record_throughput(self, factor: Factor, mpix_per_s: float) -> None:
        """Fold one measurement in; nonsense (non-positive, infinite, NaN) is ignored."""
        if not is_measurement(mpix_per_s):
            return
        try:
            self._record(factor, mpix_per_s)
        except ServiceUnavailable as exc:
            # Two workers measured a factor's first run at once; the other
            # insert won, so fold this one into its row.
            if not isinstance(exc.__cause__, IntegrityError):
                raise
            self._record(factor, mpix_per_s)

    def _record(self, factor: Factor, mpix_per_s: float) -> None:
        with self._db.write() as session:
            row = session.get(ThroughputRow, int(factor), with_for_update=True)
            session.add(fold(row, factor, mpix_per_s, now=self._clock()))


def is_measurement(mpix_per_s: float) -> bool:
    """False for nonsense: non-positive, infinite or NaN."""
    return math.isfinite(mpix_per_s) and mpix_per_s > 0


def fold(
    row: ThroughputRow | None, factor: Factor, mpix_per_s: float, *, now: datetime
) -> ThroughputRow:
    """``row`` with one more measurement in its moving average, or ``factor``'s
    first row when there is none yet."""
    if row is None:
        return ThroughputRow(factor=int(factor), mpix_per_s=mpix_per_s, samples=1, updated_at=now)
    row.mpix_per_s += THROUGHPUT_WEIGHT * (mpix_per_s - row.mpix_per_s)
    row.samples += 1
    row.updated_at = now
    return row
