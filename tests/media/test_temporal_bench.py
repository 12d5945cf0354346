"""The temporal bench's own parts: clips with known motion, the warping error, the report."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from bench._temporal_clips import cut, occluder, pan
from bench._temporal_report import BEGIN, END, write_section
from bench.temporal import warp_error


def test_the_warping_error_of_the_truth_is_zero() -> None:
    for clip in (pan("astronaut", 2, 4, (2, 0), 24), occluder("coffee", 2, 4, 24)):
        assert warp_error(clip.truth, clip.motion) == 0.0, clip.name
        assert clip.low.shape == (4, 24, 24, 3)


def test_the_warping_error_sees_a_frame_that_does_not_move() -> None:
    clip = pan("astronaut", 2, 4, (2, 0), 24)
    frozen = np.stack([clip.truth[0]] * 4)
    assert warp_error(frozen, clip.motion) > 0.01


def test_a_cut_has_no_motion_across_it() -> None:
    clip = cut("astronaut", "chelsea", 1, 6, 24)
    assert clip.cuts == (3,)
    assert np.isnan(clip.motion[3]).all()
    assert not np.isnan(clip.motion[4]).any()


def test_the_section_replaces_its_older_self(tmp_path: Path) -> None:
    doc = tmp_path / "QUALITY.md"
    doc.write_text("# Output quality\n\nphotos\n")
    write_section(doc, [BEGIN, "first", END])
    write_section(doc, [BEGIN, "second", END])
    text = doc.read_text()
    assert text.startswith("# Output quality\n\nphotos\n")
    assert "first" not in text
    assert text.count(BEGIN) == 1
    assert "second" in text
