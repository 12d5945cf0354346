"""Measured throughput per factor and network: the moving average, the rows
measured before networks were told apart (the factor's fallback), migration 0011."""

from __future__ import annotations

import pytest
from alembic import command
from sqlalchemy import bindparam, text

from tests.stores import move_schema
from upres.db.tables import UtcDateTime
from upres.domain.records import MeasuredThroughput
from upres.domain.tasks import Factor

X4PLUS = "realesrgan-x4plus"
ANIME = "realesr-animevideov3"

# A throughput row as revisions 0001-0010 wrote it: one per factor, no network.
_ROW_AT_0010 = text(
    "INSERT INTO throughput (factor, mpix_per_s, samples, updated_at)"
    " VALUES (:factor, :mpix_per_s, :samples, :at)"
).bindparams(bindparam("at", type_=UtcDateTime()))


def _url(store) -> str:
    return store.engine.url.render_as_string(hide_password=False)


def _measured_before_networks(store, clock, speeds: dict[Factor, float]) -> None:
    """``speeds`` stored as revision 0010 stored them (4 samples each), then the schema
    taken to head under them."""
    move_schema(_url(store), "0010", step=command.downgrade)
    with store.engine.begin() as conn:
        for factor, speed in speeds.items():
            conn.execute(
                _ROW_AT_0010,
                {"factor": int(factor), "mpix_per_s": speed, "samples": 4, "at": clock.now},
            )
    move_schema(_url(store), "head")


def test_throughput_is_a_moving_average_per_factor_and_network(store):
    assert store.throughput(Factor.X2, X4PLUS) is None
    store.record_throughput(Factor.X2, X4PLUS, 10.0)
    store.record_throughput(Factor.X2, X4PLUS, 20.0)

    store.record_throughput(Factor.X2, X4PLUS, float("nan"))
    store.record_throughput(Factor.X2, X4PLUS, 0.0)

    assert store.throughput(Factor.X2, X4PLUS) == pytest.approx(13.0)
    assert store.throughput(Factor.X4, X4PLUS) is None
    assert store.throughput(Factor.X2, ANIME) is None


def test_each_network_keeps_its_own_measurement(store):
    store.record_throughput(Factor.X2, X4PLUS, 2.0)
    store.record_throughput(Factor.X2, ANIME, 40.0)
    store.record_throughput(Factor.X4, ANIME, 30.0)

    assert store.throughput(Factor.X2, X4PLUS) == 2.0
    assert store.throughput(Factor.X2, ANIME) == 40.0
    assert store.measured_throughputs() == [
        MeasuredThroughput(factor=Factor.X2, network=ANIME, mpix_per_s=40.0),
        MeasuredThroughput(factor=Factor.X2, network=X4PLUS, mpix_per_s=2.0),
        MeasuredThroughput(factor=Factor.X4, network=ANIME, mpix_per_s=30.0),
    ]


def test_rows_measured_before_networks_stay_each_factors_fallback(store, clock):
    _measured_before_networks(store, clock, {Factor.X2: 6.0, Factor.X4: 3.0})

    assert store.measured_throughputs() == [
        MeasuredThroughput(factor=Factor.X2, network="", mpix_per_s=6.0),
        MeasuredThroughput(factor=Factor.X4, network="", mpix_per_s=3.0),
    ]
    assert store.throughput(Factor.X2, X4PLUS) == 6.0
    store.record_throughput(Factor.X2, ANIME, 30.0)

    assert store.throughput(Factor.X2, ANIME) == 30.0  # its own, once measured
    assert store.throughput(Factor.X2, X4PLUS) == 6.0  # still the fallback
    assert store.throughput(Factor.X4, ANIME) == 3.0
    assert store.throughput(Factor.ENHANCE, ANIME) is None
    with store.engine.connect() as conn:
        old = conn.execute(text("SELECT samples FROM throughput WHERE network = ''")).all()
    assert old == [(4,), (4,)]  # never folded into again


def test_going_back_to_0010_keeps_each_factors_newest_row(store, clock):
    store.record_throughput(Factor.X2, ANIME, 40.0)
    clock.advance(60)
    store.record_throughput(Factor.X2, X4PLUS, 2.0)
    store.record_throughput(Factor.X4, ANIME, 30.0)

    move_schema(_url(store), "0010", step=command.downgrade)
    with store.engine.connect() as conn:
        rows = conn.execute(text("SELECT factor, mpix_per_s FROM throughput ORDER BY factor"))
        kept = rows.all()
    move_schema(_url(store), "head")

    assert kept == [(2, 2.0), (4, 30.0)]
    assert store.throughput(Factor.X2, ANIME) == 2.0  # the kept row, now the fallback
