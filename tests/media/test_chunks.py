"""Chunked upscales (plan, per-chunk upscale, join) against one whole-video upscale.

The joined file must be the same video: the same frames at the same
timestamps, the same duration, the audio and subtitles copied packet for
packet; the pictures differ only by the encoder's choices at the seams.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import av
import numpy as np
import pytest

from tests.clips import make_clip, make_tagged_clip, write_faststart, write_truncated
from tests.clips_media import make_interlaced_clip
from upres.domain.media import EncodeSettings, MediaLimits
from upres.domain.tasks import Factor
from upres.errors import EncodeError, InvalidRequest, TruncatedVideo
from upres.inputs.probe import probe
from upres.pipeline.chunks import (
    DEFAULT_PRE_ROLL,
    ChunkSpan,
    cut_spans,
    join_chunks,
    pre_roll_for,
    upscale_chunk,
)
from upres.pipeline.engine import upscale_video
from upres.pipeline.frames import FrameUpscaler
from upres.pipeline.motion import DisFlow
from upres.pipeline.temporal import StabilisedUpscaler, TemporalStabiliser
from upres.pipeline.upscale import InterpolationUpscaler
from upres.pipeline.video_run import VideoOptions
from upres.pipeline.window import FrameWindow, window_packets

ENCODE = EncodeSettings(preset="fast")
LIMITS = MediaLimits()
CHUNK_S = 0.5
# x264 with B-frames (3, pyramid) and a keyframe every 6 frames: several chunks in 3 s.
B_FRAMES = {"preset": "medium", "g": "6", "bf": "3"}
# Open GOP: a keyframe's leading B-frames are shown before it and reference the GOP before.
OPEN_GOP = {**B_FRAMES, "x264-params": "open_gop=1:keyint=6:min-keyint=2"}
SUBTITLES = ("one", "two", "three", "four")


@dataclass(frozen=True, kw_only=True)
class Facts:
    """What must match between a chunked and a whole-video output."""

    times: list[int]
    time_base: object
    duration: int | None
    audio: list[bytes]
    subtitles: list[bytes]


def _facts(path: Path, *, audio: bool = True) -> Facts:
    with av.open(str(path)) as container:
        video = container.streams.video[0]
        times = [int(f.pts) for f in container.decode(video)]
        time_base, duration = video.time_base, video.duration
    with av.open(str(path)) as container:
        sound = container.streams.audio[0] if audio else None
        packets = [bytes(p) for p in container.demux(sound) if p.size] if sound else []
    with av.open(str(path)) as container:
        subs = container.streams.subtitles
        subtitles = [bytes(p) for p in container.demux(subs[0]) if p.size] if subs else []
    return Facts(
        times=times,
        time_base=time_base,
        duration=duration,
        audio=packets,
        subtitles=subtitles,
    )


def _pictures(path: Path) -> np.ndarray:
    with av.open(str(path)) as container:
        return np.stack([f.to_ndarray(format="rgb24") for f in container.decode(video=0)])


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return float("inf") if mse == 0 else 10 * np.log10(255**2 / mse)


def _bicubic() -> FrameUpscaler:
    return InterpolationUpscaler(Factor.X2, batch_size=4)


def _stabilised() -> FrameUpscaler:
    return StabilisedUpscaler(InterpolationUpscaler(Factor.X2), TemporalStabiliser(DisFlow()))


def _chunked(
    source: Path,
    folder: Path,
    make: Callable[[], FrameUpscaler],
    *,
    name: str = "joined.mp4",
    pre_roll: int | None = None,
    encode: EncodeSettings = ENCODE,
    double_rate: bool = False,
    seconds: float = CHUNK_S,
) -> tuple[Path, tuple[ChunkSpan, ...]]:
    spans = cut_spans(source, chunk_seconds=seconds)
    parts = []
    for span in spans:
        result = upscale_chunk(
            source=source,
            span=span,
            destination=folder / f"part{span.index}.mp4",
            upscaler=make(),
            pre_roll=pre_roll,
            options=VideoOptions(encode=encode, limits=LIMITS, double_rate=double_rate),
        )
        assert result.frames == span.frame_count * (2 if double_rate else 1)
        parts.append(result.path)
    joined = join_chunks(
        source=source,
        parts=parts,
        destination=folder / name,
        options=VideoOptions(encode=encode, limits=LIMITS, double_rate=double_rate),
    )
    assert joined.frames == sum(span.frame_count for span in spans) * (2 if double_rate else 1)
    return joined.path, spans


def _whole(
    source: Path,
    folder: Path,
    make: Callable[[], FrameUpscaler],
    *,
    name: str = "whole.mp4",
    encode: EncodeSettings = ENCODE,
    double_rate: bool = False,
) -> Path:
    return upscale_video(
        source=source,
        destination=folder / name,
        upscaler=make(),
        options=VideoOptions(encode=encode, limits=LIMITS, double_rate=double_rate),
    ).path


@dataclass(frozen=True, kw_only=True)
class Case:
    """A source clip, the output's codec and container."""

    clip: dict[str, Any]
    encode: EncodeSettings = ENCODE
    output: str = "out.mp4"


HEVC_OPEN_GOP = "log-level=error:keyint=6:min-keyint=6:bframes=3"  # x265 GOPs are open: CRA
CASES = {
    "b-frames": Case(clip={"encoder_options": B_FRAMES}),
    "open-gop": Case(clip={"encoder_options": OPEN_GOP}),
    "vfr": Case(clip={"encoder_options": B_FRAMES, "vfr": True}),
    "matroska": Case(clip={"encoder_options": B_FRAMES}, output="out.mkv"),
}
SLOW_CASES = {
    "hevc": Case(
        clip={"codec": "libx265", "encoder_options": {"x265-params": HEVC_OPEN_GOP}},
        encode=EncodeSettings(codec="h265", preset="ultrafast"),
    ),
    "av1": Case(
        clip={"encoder_options": B_FRAMES}, encode=EncodeSettings(codec="av1", preset="12")
    ),
}


@pytest.mark.parametrize(
    "kind",
    [*CASES, *(pytest.param(kind, marks=pytest.mark.slow) for kind in SLOW_CASES)],
)
def test_chunked_output_is_the_whole_video_frame_for_frame(tmp_path: Path, kind: str) -> None:
    case = CASES.get(kind) or SLOW_CASES[kind]
    source = make_clip(tmp_path / "in.mp4", frames=36, fps=12, subtitles=SUBTITLES, **case.clip)
    joined, spans = _chunked(source, tmp_path, _bicubic, name=case.output, encode=case.encode)
    whole = _whole(source, tmp_path, _bicubic, name=f"whole-{case.output}", encode=case.encode)
    assert len(spans) >= 5
    chunked_facts, whole_facts, source_facts = _facts(joined), _facts(whole), _facts(source)
    assert chunked_facts == whole_facts
    assert len(chunked_facts.times) == 36
    assert chunked_facts.audio == source_facts.audio
    if case.output.endswith(".mp4"):  # Matroska takes them as subrip: the same text
        assert chunked_facts.subtitles == source_facts.subtitles
    assert sum(len(cue) > 2 for cue in chunked_facts.subtitles) == len(SUBTITLES)  # not gaps
    # The same pictures in the same order (a lost open-GOP reference would show here).
    ours, theirs = _pictures(joined), _pictures(whole)
    assert min(psnr(a, b) for a, b in zip(ours, theirs, strict=True)) > 30


@pytest.mark.parametrize("double_rate", [False, True])
def test_an_interlaced_source_is_deinterlaced_alike(tmp_path: Path, double_rate: bool) -> None:
    source = make_interlaced_clip(tmp_path / "in.mp4", frames=48, gop=8)
    joined, spans = _chunked(source, tmp_path, _bicubic, double_rate=double_rate, seconds=0.3)
    whole = _whole(source, tmp_path, _bicubic, double_rate=double_rate)
    assert len(spans) >= 5
    assert _facts(joined, audio=False) == _facts(whole, audio=False)
    assert len(_facts(joined, audio=False).times) == 48 * (2 if double_rate else 1)
    ours, theirs = _pictures(joined), _pictures(whole)
    assert min(psnr(a, b) for a, b in zip(ours, theirs, strict=True)) > 35


def test_spans_cover_every_frame_from_keyframes(tmp_path: Path) -> None:
    source = make_clip(tmp_path / "in.mp4", frames=36, fps=12, encoder_options=OPEN_GOP)
    spans = cut_spans(source, chunk_seconds=CHUNK_S)
    with av.open(str(source)) as container:
        stream = container.streams.video[0]
        packets = [p for p in container.demux(stream) if p.size]
        base = stream.time_base
    times = sorted(float(p.pts * base) for p in packets)
    keyframes = {float(p.pts * base) for p in packets if p.is_keyframe}
    assert [s.index for s in spans] == list(range(len(spans)))
    assert sum(s.frame_count for s in spans) == len(times)
    for span, after in itertools.pairwise(spans):
        assert span.end_s == after.start_s
        assert after.first_frame == span.first_frame + span.frame_count
        assert after.start_s in keyframes
        assert times[after.first_frame] == after.start_s
    assert spans[-1].end_s == pytest.approx(3.0)


def test_a_short_video_is_one_chunk(tmp_path: Path) -> None:
    source = make_clip(tmp_path / "in.mp4", frames=12, fps=12, encoder_options=B_FRAMES)
    (span,) = cut_spans(source, chunk_seconds=60.0)
    assert (span.index, span.first_frame, span.frame_count, span.start_s) == (0, 0, 12, 0.0)
    assert span.end_s == pytest.approx(1.0)


def test_plan_refuses_a_chunk_length_that_is_not_positive(tmp_path: Path) -> None:
    source = make_clip(tmp_path / "in.mp4", frames=6, fps=12)
    with pytest.raises(InvalidRequest):
        cut_spans(source, chunk_seconds=0)


def test_the_temporal_stage_shows_no_seam(tmp_path: Path) -> None:
    source = make_clip(tmp_path / "in.mp4", frames=36, fps=12, encoder_options=B_FRAMES)
    joined, spans = _chunked(source, tmp_path, _stabilised)
    whole = _whole(source, tmp_path, _stabilised)
    cold, _ = _chunked(source, tmp_path, _stabilised, name="cold.mp4", pre_roll=0)
    # Each frame against the model's own frame (bicubic, no temporal stage).
    reference = _pictures(_whole(source, tmp_path, _bicubic, name="bicubic.mp4"))
    ours, theirs, unprimed = _pictures(joined), _pictures(whole), _pictures(cold)
    seams = [span.first_frame for span in spans[1:]]
    for frame in seams:
        gap = psnr(ours[frame], reference[frame]) - psnr(theirs[frame], reference[frame])
        assert abs(gap) < 0.5, (frame, gap)
    # Without the pre-roll the seam frames are the model's own: the stage had carried state.
    primed = np.mean([psnr(ours[f], theirs[f]) for f in seams])
    assert primed > np.mean([psnr(unprimed[f], theirs[f]) for f in seams])


def test_stateful_upscalers_get_a_pre_roll() -> None:
    assert pre_roll_for(_stabilised()) == DEFAULT_PRE_ROLL
    assert pre_roll_for(_bicubic()) == 0


def test_a_part_must_be_an_mp4(tmp_path: Path) -> None:
    source = make_clip(tmp_path / "in.mp4", frames=6, fps=12)
    (span,) = cut_spans(source, chunk_seconds=CHUNK_S)
    with pytest.raises(InvalidRequest):
        upscale_chunk(
            source=source,
            span=span,
            destination=tmp_path / "part.mkv",
            upscaler=_bicubic(),
            options=VideoOptions(encode=ENCODE, limits=LIMITS),
        )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.mp4"]


def test_join_refuses_parts_of_another_size_and_leaves_nothing(tmp_path: Path) -> None:
    source = make_clip(tmp_path / "in.mp4", frames=24, fps=12, encoder_options=B_FRAMES)
    first, second = cut_spans(source, chunk_seconds=CHUNK_S)[:2]
    parts = [
        upscale_chunk(
            source=source,
            span=span,
            destination=tmp_path / f"part{span.index}.mp4",
            upscaler=InterpolationUpscaler(factor),
            options=VideoOptions(encode=ENCODE, limits=LIMITS),
        ).path
        for span, factor in ((first, Factor.X2), (second, Factor.X4))
    ]
    with pytest.raises(EncodeError, match=r"part1\.mp4"):
        join_chunks(
            source=source,
            parts=parts,
            destination=tmp_path / "out.mp4",
            options=VideoOptions(encode=ENCODE, limits=LIMITS),
        )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.mp4", "part0.mp4", "part1.mp4"]


def test_join_without_parts_is_an_error(tmp_path: Path) -> None:
    source = make_clip(tmp_path / "in.mp4", frames=6, fps=12)
    with pytest.raises(EncodeError):
        join_chunks(
            source=source,
            parts=[],
            destination=tmp_path / "o.mp4",
            options=VideoOptions(encode=ENCODE, limits=LIMITS),
        )


def test_a_late_chunk_decodes_from_two_keyframes_before_it(tmp_path: Path) -> None:
    source = make_clip(tmp_path / "in.mp4", frames=72, fps=12, encoder_options=OPEN_GOP)
    with av.open(str(source)) as container:
        stream = container.streams.video[0]
        keyframes = sorted(int(p.pts) for p in container.demux(stream) if p.is_keyframe)
    start = keyframes[-2]
    with av.open(str(source)) as container:
        stream = container.streams.video[0]
        first = next(iter(window_packets(container, stream, FrameWindow(start=start, end=None))))
    # The keyframe a seek finds is the one at or before the start; one more back
    # decodes its leading pictures' references.
    assert first.is_keyframe
    assert first.pts == keyframes[-4]


def test_a_chunk_whose_pre_roll_reaches_before_the_first_frame_decodes_from_it(
    tmp_path: Path,
) -> None:
    source = make_clip(tmp_path / "in.mp4", frames=24, fps=12, encoder_options=B_FRAMES)
    with av.open(str(source)) as container:
        stream = container.streams.video[0]
        window = FrameWindow(start=6 * 1024, end=None, preroll=100)
        first = next(iter(window_packets(container, stream, window)))
    assert (first.pts, first.is_keyframe) == (0, True)


def test_planning_a_cut_file_fails_before_any_chunk(tmp_path: Path) -> None:
    source = make_clip(tmp_path / "in.mp4", frames=36, fps=12, encoder_options=B_FRAMES)
    cut = write_truncated(write_faststart(source, tmp_path / "fast.mp4"), tmp_path / "cut.mp4")
    with pytest.raises(TruncatedVideo):
        cut_spans(cut, chunk_seconds=CHUNK_S)


def _described(path: Path) -> tuple[object, ...]:
    """Everything a container says about itself and its streams, and every side packet."""
    with av.open(str(path)) as container:
        streams = [
            (s.type, dict(s.metadata), int(s.disposition), s.codec_context and s.codec_context.name)
            for s in container.streams
        ]
        facts = (dict(container.metadata), streams, container.chapters())
    with av.open(str(path)) as container:
        sides = [s for s in container.streams if s.type != "video"]
        packets = [(p.stream.index, p.pts, bytes(p)) for p in container.demux(*sides) if p.size]
    return (*facts, probe(path, limits=LIMITS).rotation, packets)


@pytest.mark.parametrize("container", ["mp4", "matroska"])
def test_tracks_tags_chapters_and_rotation_come_once_from_the_source(
    tmp_path: Path, container: str
) -> None:
    suffix = ".mp4" if container == "mp4" else ".mkv"
    source = make_tagged_clip(
        tmp_path / f"in{suffix}", container=container, encoder_options=B_FRAMES
    )
    joined, spans = _chunked(source, tmp_path, _bicubic, name=f"joined{suffix}")
    whole = _whole(source, tmp_path, _bicubic, name=f"whole{suffix}")
    assert len(spans) >= 3
    assert _described(joined) == _described(whole)
    rotated = make_clip(
        tmp_path / "turned.mp4", frames=24, fps=12, rotation=90, encoder_options=B_FRAMES
    )
    joined, _ = _chunked(rotated, tmp_path, _bicubic, name="turned-joined.mp4")
    whole = _whole(rotated, tmp_path, _bicubic, name="turned-whole.mp4")
    assert _described(joined) == _described(whole)
