"""The chunks bench measures a tiny clip end to end (no timing is asserted)."""

from __future__ import annotations

from pathlib import Path

import pytest
from bench import _report, chunks


@pytest.mark.slow
def test_overhead_is_measured_on_a_real_plan_and_join(tmp_path: Path) -> None:
    cost = chunks.overhead(
        tmp_path, size="64x36", seconds=16, chunk_seconds=8, model="realesr-animevideov3", repeats=1
    )
    assert (cost.chunks, cost.frames) == (2, 384)
    assert cost.plan_s > 0
    assert cost.join_s > 0
    assert cost.model_s_per_frame > 0
    runs = [
        chunks.EndToEnd(workers=1, threads=None, wall_s=2.0, chunks=1),
        chunks.EndToEnd(workers=2, threads=None, wall_s=1.0, chunks=4),
    ]
    text = chunks.report(cost, runs, "a tiny clip")
    assert "| plan + join |" in text
    assert "| 4 | 1.0 s | 2.00x |" in text
    doc = tmp_path / "BENCHMARKS.md"
    _report.write_section(doc, "chunks", text)
    assert "<!-- throughput:chunks begin -->" in doc.read_text()
