"""Broken inputs: each gives a typed error a user understands, and never a partial output.

Damaged-stream policy (``upres.pipeline.decode``): undecodable packets are
skipped and counted; the output keeps every good frame at its own timestamp;
more than 10% bad packets, or no frame at all, fails with CorruptVideo.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import av
import pytest

from tests.clips import (
    make_clip,
    write_audio_only,
    write_corrupt_packets,
    write_faststart,
    write_no_frames,
    write_not_a_video,
    write_text_file,
    write_truncated,
    write_unknown_codec,
)
from upres.domain.media import EncodeSettings, MediaLimits
from upres.domain.tasks import Factor
from upres.errors import (
    CorruptVideo,
    EmptyVideo,
    FrameTooLarge,
    InvalidRequest,
    MediaError,
    NotAVideo,
    NoVideoStream,
    TruncatedVideo,
    UnsupportedCodec,
    VideoTooLong,
)
from upres.inputs.probe import probe
from upres.pipeline.engine import upscale_video
from upres.pipeline.upscale import InterpolationUpscaler
from upres.pipeline.video_run import VideoOptions

FAST = EncodeSettings(preset="ultrafast")


def _upscale(source: Path, out_dir: Path, limits: MediaLimits | None = None) -> Path:
    destination = out_dir / "out.mp4"
    upscale_video(
        source=source,
        destination=destination,
        upscaler=InterpolationUpscaler(Factor.X2),
        options=VideoOptions(encode=FAST, limits=limits or MediaLimits()),
    )
    return destination


def _good(tmp: Path) -> Path:
    return make_clip(tmp / "good.mp4", frames=24)


BadInput = Callable[[Path], Path]
CASES: list[tuple[str, BadInput, type[MediaError], str]] = [
    ("random bytes", lambda d: write_not_a_video(d / "x.mp4"), NotAVideo, "not a video"),
    ("text file", lambda d: write_text_file(d / "x.mp4"), NotAVideo, "not a video"),
    ("missing file", lambda d: d / "nope.mp4", NotAVideo, "does not exist"),
    (
        "truncated mp4, index at the end",
        lambda d: write_truncated(_good(d), d / "x.mp4"),
        CorruptVideo,
        "truncated",
    ),
    (
        "truncated mp4, index at the front",
        lambda d: write_truncated(write_faststart(_good(d), d / "f.mp4"), d / "x.mp4"),
        TruncatedVideo,
        r"truncated: its video stream #0 \(12 of its 24 frames\) ends at 1.00 s .* 2.00 s",
    ),
    (
        "truncated mkv",
        lambda d: write_truncated(
            make_clip(d / "m.mkv", frames=24, container="matroska"), d / "x.mkv"
        ),
        TruncatedVideo,
        "truncated: the file ends at",
    ),
    ("audio only", lambda d: write_audio_only(d / "x.m4a"), NoVideoStream, "no video stream"),
    ("no frames", lambda d: write_no_frames(d / "x.mkv"), EmptyVideo, "no frame"),
    (
        "unknown codec",
        lambda d: write_unknown_codec(_good(d), d / "x.mp4"),
        UnsupportedCodec,
        "not supported",
    ),
    (
        "mostly corrupt",
        lambda d: write_corrupt_packets(_good(d), d / "x.mp4", packets=(3, 5, 7, 9, 11, 13)),
        CorruptVideo,
        "6 of 24",
    ),
]


@pytest.mark.parametrize(("name", "make", "error", "message"), CASES, ids=[c[0] for c in CASES])
def test_bad_input_is_a_typed_error_and_leaves_no_output(
    tmp_path: Path, name: str, make: BadInput, error: type[MediaError], message: str
) -> None:
    source = make(tmp_path)
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    with pytest.raises(error, match=message) as caught:
        _upscale(source, out_dir)
    assert not isinstance(caught.value, av.error.FFmpegError)
    assert list(out_dir.iterdir()) == []


@pytest.mark.parametrize(
    ("limits", "error"),
    [
        (MediaLimits(max_width=32, max_height=32), FrameTooLarge),
        (MediaLimits(max_duration_s=0.5), VideoTooLong),
    ],
)
def test_limits_refuse_before_any_work(
    tmp_path: Path, limits: MediaLimits, error: type[MediaError]
) -> None:
    source = make_clip(tmp_path / "clip.mp4")
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    with pytest.raises(error):
        _upscale(source, out_dir, limits)
    assert list(out_dir.iterdir()) == []


def test_probe_errors_wrap_the_pyav_error(tmp_path: Path) -> None:
    with pytest.raises(CorruptVideo) as caught:
        probe(write_truncated(_good(tmp_path), tmp_path / "t.mp4"), limits=MediaLimits())
    assert isinstance(caught.value.__cause__, av.error.FFmpegError)


def _frame_times(path: Path) -> list[float]:
    with av.open(str(path)) as container:
        return [float(f.time) for f in container.decode(video=0)]


def test_a_few_damaged_packets_are_skipped_and_the_rest_keep_their_times(
    tmp_path: Path,
) -> None:
    good = _good(tmp_path)
    damaged = write_corrupt_packets(good, tmp_path / "damaged.mp4", packets=(5, 9))
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    destination = out_dir / "out.mp4"
    result = upscale_video(
        source=damaged,
        destination=destination,
        upscaler=InterpolationUpscaler(Factor.X2),
        options=VideoOptions(encode=FAST, limits=MediaLimits()),
    )
    assert result.skipped_packets == 2
    assert result.frames == 22
    # The clip has no B-frames, so packet i is frame i: frames 5 and 9 are gone.
    expected = [t for i, t in enumerate(_frame_times(good)) if i not in (5, 9)]
    assert _frame_times(destination) == pytest.approx(expected)


def test_the_destination_is_checked_before_the_source_is_read(tmp_path: Path) -> None:
    with pytest.raises(InvalidRequest, match="missing does not exist"):
        _upscale(tmp_path / "no-such-input.mp4", tmp_path / "missing")
