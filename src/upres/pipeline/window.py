"""A span of a video's frames, decoded on its own (one chunk of a chunked upscale).

Frames are chosen by presentation time, never by decode order, so B-frames
and open GOPs (leading pictures shown before their keyframe) change nothing:
a window holds the frames whose pts is in ``[start, end)``. Decoding starts
at a keyframe before the first frame the window needs, one keyframe further
back than the seek finds: leading pictures of the keyframe found may
reference the GOP before it, and that GOP is then decoded too. Frames before
the window are decoded and dropped without conversion; the last ``preroll``
of them are kept, so a stage that carries state from frame to frame (the
temporal stabiliser) can be primed with them. Decoding stops once a frame at
or after ``end`` came out, so the last frame's duration (the gap to the next)
and a deinterlacer's look-ahead are what a whole-video decode gives; with a
``lookahead`` that many frames at or after ``end`` are given too (the
frame-rate stage synthesises frames up to the next chunk's first).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from itertools import chain

import av
import av.error
from av.container import InputContainer
from av.packet import Packet
from av.video.frame import VideoFrame
from av.video.stream import VideoStream

from upres.inputs.probe import media_error
from upres.pipeline.frames import FALLBACK_TIME_BASE

# When the stream declares no frame rate, the pre-roll is looked for this far back.
_FALLBACK_FRAME_S = Fraction(1, 10)

Timed = tuple[VideoFrame, int, int]


@dataclass(frozen=True, kw_only=True)
class FrameWindow:
    """The frames with ``start <= pts < end`` (the stream's time base; None: unbounded),
    after ``preroll`` frames before ``start`` that are decoded only to prime a stage, and
    ``lookahead`` frames from ``end`` on."""

    start: int | None
    end: int | None
    preroll: int = 0
    lookahead: int = 0


# Every frame of the video: decoding from its first packet.
WHOLE = FrameWindow(start=None, end=None)


def window_packets(
    container: InputContainer, stream: VideoStream, window: FrameWindow
) -> Iterator[Packet[VideoStream]]:
    """The video packets from the keyframe decoding ``window`` starts at, to the end.

    Falls back to the whole stream when the container cannot seek to a
    keyframe early enough (or the window starts within the first GOP). Raises
    CorruptVideo (via ``media_error``) when even seeking to the start fails.
    """
    if window.start is None:
        return container.demux(stream)
    target = window.start - _preroll_ticks(stream, window.preroll)
    try:
        found = _keyframe_before(container, stream, target)
    except av.error.FFmpegError:
        found = None  # a target before the first keyframe, for one
    if found is not None:
        return chain([found], container.demux(stream))
    try:
        container.seek(0, backward=True)
    except av.error.FFmpegError as exc:
        raise media_error(exc, "seeking") from exc
    return container.demux(stream)


def _keyframe_before(
    container: InputContainer, stream: VideoStream, target: int
) -> Packet[VideoStream] | None:
    """The keyframe before the one a seek to ``target`` finds, the demuxer just after it
    (that one when it has none before it; None when seeking lands too late)."""
    found = _seek_keyframe(container, stream, target)
    if not _usable(found, target):
        return None
    assert found is not None
    # Matroska gives no decode time to a keyframe: its presentation time is as early.
    decoded_at = found.dts if found.dts is not None else found.pts
    if decoded_at is not None:
        try:
            earlier = _seek_keyframe(container, stream, decoded_at - 1)
        except av.error.FFmpegError:
            earlier = None  # nothing before the first keyframe
        if _usable(earlier, target):
            return earlier
    return _seek_keyframe(container, stream, target)


def _preroll_ticks(stream: VideoStream, preroll: int) -> int:
    """How far before the window its ``preroll`` frames start, at most (in stream ticks)."""
    base = Fraction(stream.time_base or FALLBACK_TIME_BASE)
    rate = stream.average_rate or stream.base_rate
    frame_s = 1 / Fraction(rate) if rate else _FALLBACK_FRAME_S
    return int((preroll + 1) * frame_s / base) + 1


def _seek_keyframe(
    container: InputContainer, stream: VideoStream, target: int
) -> Packet[VideoStream] | None:
    """The first packet after seeking back from ``target`` (None at the end of the stream)."""
    container.seek(target, backward=True, any_frame=False, stream=stream)
    for packet in container.demux(stream):
        if packet.size:
            return packet
    return None


def _usable(packet: Packet[VideoStream] | None, target: int) -> bool:
    """A keyframe shown no later than ``target``: decoding from it reaches every frame after."""
    return (
        packet is not None
        and packet.is_keyframe
        and packet.pts is not None
        and packet.pts <= target
    )


def windowed(
    timed: Iterator[Timed], window: FrameWindow, rate: int
) -> Iterator[tuple[Timed, bool]]:
    """The frames of ``window`` (each with False) after its pre-roll (each with True).

    ``rate`` is the deinterlacer's frames per input frame: timestamps are then
    in the stream's time base divided by ``rate``.
    """
    start = None if window.start is None else window.start * rate
    end = None if window.end is None else window.end * rate
    held: deque[Timed] = deque(maxlen=window.preroll)
    ahead = window.lookahead
    for item in timed:
        pts = item[1]
        if end is not None and pts >= end:
            if not ahead:
                return
            ahead -= 1
        if start is not None and pts < start:
            held.append(item)
            continue
        while held:
            yield held.popleft(), True
        yield item, False
