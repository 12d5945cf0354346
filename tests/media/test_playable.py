"""The small H.264 copy of a result browsers cannot play (HEVC)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.clips import make_clip, write_text_file
from upres.domain.media import MediaLimits
from upres.domain.tasks import playable_key
from upres.errors import EncodeError
from upres.inputs.probe import probe
from upres.pipeline.playable import playable_copy


def test_an_hevc_result_gets_a_smaller_h264_copy_of_every_frame(tmp_path: Path) -> None:
    source = make_clip(tmp_path / "hevc.mp4", width=200, height=100, frames=12, codec="libx265")
    copy = tmp_path / "copy.mp4"

    playable_copy(source, copy, max_width=100)

    info = probe(copy, limits=MediaLimits())
    assert (info.codec, info.pix_fmt, info.width, info.height) == ("h264", "yuv420p", 100, 50)
    assert info.frame_count == 12
    assert info.has_audio is False


def test_a_copy_that_cannot_be_made_leaves_nothing(tmp_path: Path) -> None:
    copy = tmp_path / "copy.mp4"
    with pytest.raises(EncodeError, match="playable copy"):
        playable_copy(write_text_file(tmp_path / "x.mp4"), copy)
    assert not copy.exists()


def test_the_copy_lives_beside_the_result() -> None:
    key = "task-unified-1-abcdefgh/attempt-2.mp4"
    assert playable_key(key) == "task-unified-1-abcdefgh/attempt-2.h264-preview.mp4"
