"""probe(): what upres learns about a real input file, from a path or a file-like object."""

from __future__ import annotations

import io
from fractions import Fraction
from pathlib import Path

import av
import pytest

from tests.clips import make_clip
from upres.domain.media import MediaLimits, VideoInfo
from upres.errors import FrameTooLarge, VideoTooLong
from upres.inputs.probe import packet_span_s, probe, video_stream

LIMITS = MediaLimits()


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_clip(tmp_path_factory.mktemp("probe") / "clip.mp4")


def test_probe_reads_size_timing_codec_and_audio(clip: Path) -> None:
    info = probe(clip, limits=LIMITS)
    assert (info.width, info.height) == (64, 48)
    assert info.duration_s == pytest.approx(1.0)
    assert info.frame_count == 12
    assert info.average_fps == 12
    assert (info.codec, info.pix_fmt, info.bit_depth) == ("h264", "yuv420p", 8)
    assert info.has_audio
    assert info.rotation == 0
    assert "mp4" in info.container


def test_probe_works_on_a_seekable_file_object(clip: Path) -> None:
    from_path = probe(clip, limits=LIMITS)
    with clip.open("rb") as f:
        assert probe(f, limits=LIMITS) == from_path
    assert probe(io.BytesIO(clip.read_bytes()), limits=LIMITS) == from_path


def test_vfr_duration_comes_from_timestamps_not_frame_count(tmp_path: Path) -> None:
    info = probe(make_clip(tmp_path / "vfr.mp4", vfr=True, frames=12, fps=12), limits=LIMITS)
    # 12 frames alternating 83 ms and 166 ms apart: 1.41 s, not 12 / 12 fps = 1 s.
    assert info.duration_s == pytest.approx(1.411, abs=0.01)
    assert info.frame_count == 12


def test_duration_falls_back_to_the_packets_when_the_stream_has_none(tmp_path: Path) -> None:
    clip = make_clip(tmp_path / "clip.mkv", container="matroska", frames=24, fps=12)
    with av.open(str(clip)) as container:
        stream = video_stream(container)
        assert stream.duration is None
        assert packet_span_s(container, stream) == pytest.approx(2.0, abs=0.01)
    # The container duration (audio included) comes before the packet scan.
    assert probe(clip, limits=LIMITS).duration_s == pytest.approx(2.0, abs=0.03)


@pytest.mark.parametrize("degrees", [90, 180, 270])
def test_probe_reads_display_rotation(tmp_path: Path, degrees: int) -> None:
    info = probe(make_clip(tmp_path / "rot.mp4", rotation=degrees), limits=LIMITS)
    assert info.rotation == degrees


def test_probe_reads_colour_tags(tmp_path: Path) -> None:
    info = probe(make_clip(tmp_path / "709.mp4", color="bt709"), limits=LIMITS)
    assert (info.color.matrix, info.color.primaries, info.color.transfer) == (1, 1, 1)
    assert info.color.color_range == 1


def test_probe_reads_ten_bit_and_aspect_ratio(tmp_path: Path) -> None:
    clip = make_clip(
        tmp_path / "10.mp4", codec="libx265", pix_fmt="yuv420p10le", sar=Fraction(4, 3)
    )
    info = probe(clip, limits=LIMITS)
    assert (info.codec, info.bit_depth, info.pix_fmt) == ("hevc", 10, "yuv420p10le")
    assert info.sample_aspect_ratio == Fraction(4, 3)


def test_frame_size_limit_allows_either_orientation(clip: Path) -> None:
    portrait_limits = MediaLimits(max_width=48, max_height=64)
    assert isinstance(probe(clip, limits=portrait_limits), VideoInfo)
    with pytest.raises(FrameTooLarge, match="64x48"):
        probe(clip, limits=MediaLimits(max_width=32, max_height=64))


def test_duration_limit(clip: Path) -> None:
    with pytest.raises(VideoTooLong, match=r"1\.0 s"):
        probe(clip, limits=MediaLimits(max_duration_s=0.5))
