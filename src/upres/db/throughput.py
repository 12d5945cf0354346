"""Measured upscaling throughput per factor and network, for ``estimated_time``."""

from __future__ import annotations

import math
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from upres.clock import Clock
from upres.db.tables import ThroughputRow
from upres.db.unit import Database
from upres.domain.records import MeasuredThroughput
from upres.domain.tasks import Factor
from upres.errors import ServiceUnavailable

# Weight of the newest measurement in the moving average: recent runs matter
# most (the hardware or model may change) without one odd run swinging it.
THROUGHPUT_WEIGHT = 0.3

# The network of the rows measured before networks were told apart (migration
# 0011): whatever ran, folded together. Never written again; each factor's row
# stands in for a network that has no measurement of its own yet.
UNKNOWN_NETWORK = ""


class SqlThroughput:
    """An exponentially weighted moving average of output megapixels per second,
    per factor and network."""

    def __init__(self, db: Database, clock: Clock) -> None:
        self._db = db
        self._clock = clock

    def throughput(self, factor: Factor, network: str) -> float | None:
        """Measured output megapixels per second of ``network`` at ``factor``; until
        it has one, the factor's measurement from before networks were told apart;
        None when neither exists."""
        query = select(ThroughputRow.network, ThroughputRow.mpix_per_s).where(
            ThroughputRow.factor == int(factor),
            ThroughputRow.network.in_((network, UNKNOWN_NETWORK)),
        )
        with self._db.read() as session:
            speeds = {row.network: row.mpix_per_s for row in session.execute(query)}
        return speeds.get(network, speeds.get(UNKNOWN_NETWORK))

    def measured_throughputs(self) -> list[MeasuredThroughput]:
        """Every measurement, by factor then network."""
        query = select(ThroughputRow).order_by(ThroughputRow.factor, ThroughputRow.network)
        with self._db.read() as session:
            return [
                MeasuredThroughput(
                    factor=Factor(row.factor), network=row.network, mpix_per_s=row.mpix_per_s
                )
                for row in session.scalars(query)
            ]

    def record_throughput(self, factor: Factor, network: str, mpix_per_s: float) -> None:
        """Fold one measurement of ``network`` (a registry id, never
        ``UNKNOWN_NETWORK``) in; nonsense (non-positive, infinite, NaN) is ignored."""
        if not is_measurement(mpix_per_s):
            return
        try:
            self._record(factor, network, mpix_per_s)
        except ServiceUnavailable as exc:
            # Two workers measured a network's first run at once; the other
            # insert won, so fold this one into its row.
            if not isinstance(exc.__cause__, IntegrityError):
                raise
            self._record(factor, network, mpix_per_s)

    def _record(self, factor: Factor, network: str, mpix_per_s: float) -> None:
        with self._db.write() as session:
            row = session.get(ThroughputRow, (int(factor), network), with_for_update=True)
            session.add(fold(row, factor, network, mpix_per_s, now=self._clock()))


def is_measurement(mpix_per_s: float) -> bool:
    """False for nonsense: non-positive, infinite or NaN."""
    return math.isfinite(mpix_per_s) and mpix_per_s > 0


def fold(
    row: ThroughputRow | None, factor: Factor, network: str, mpix_per_s: float, *, now: datetime
) -> ThroughputRow:
    """``row`` with one more measurement in its moving average, or the first row
    of ``network`` at ``factor`` when there is none yet."""
    if row is None:
        return ThroughputRow(
            factor=int(factor), network=network, mpix_per_s=mpix_per_s, samples=1, updated_at=now
        )
    row.mpix_per_s += THROUGHPUT_WEIGHT * (mpix_per_s - row.mpix_per_s)
    row.samples += 1
    row.updated_at = now
    return row
