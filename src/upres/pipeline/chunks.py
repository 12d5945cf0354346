"""One video as chunks: plan them, upscale each on its own (anywhere), join them.

    cut_spans(source)        the packet index only: spans of about ``chunk_seconds``
    upscale_chunk(span)      decode the span (+ pre-roll), upscale, encode a video-only part
    join_chunks(parts)       remux the parts' packets in order, add the source's other
                             streams, metadata and chapters once

The joined file is frame-exact against ``upscale_video`` on the same source:
the same frames at the same timestamps (VFR included), the same duration,
the audio copied packet for packet. That holds because

- spans start on source keyframes and hold the frames whose presentation time
  falls in ``[start_s, end_s)`` (``upres.pipeline.window``): B-frames and open
  GOPs cannot move a frame from one chunk to another;
- every part is encoded by the same ``encode`` code as a whole video, with the
  same settings, so their parameter sets match (checked at the join) and each
  part starts with a keyframe that needs nothing before it;
- parts keep the source's timestamps exactly (``part_muxer_options``);
- a stage that carries state from frame to frame (the temporal stabiliser, a
  recurrent model) is primed with ``pre_roll`` frames before the span, whose
  output is dropped, so no seam shows.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av.error

from upres.errors import InvalidRequest
from upres.inputs.probe import InputSource, media_error, open_input, video_stream
from upres.pipeline.bidirectional import BidirectionalUpscaler
from upres.pipeline.completeness import check_complete
from upres.pipeline.engine import prepare, run_job
from upres.pipeline.frames import FALLBACK_TIME_BASE, FrameUpscaler
from upres.pipeline.join import join_chunks
from upres.pipeline.recurrent import RecurrentUpscaler
from upres.pipeline.temporal import StabilisedUpscaler
from upres.pipeline.video_run import NO_HOOKS, VideoHooks, VideoOptions, VideoResult
from upres.pipeline.window import FrameWindow

# Frames run through a stateful upscaler before a chunk's first frame. The
# stabiliser's carried texture fades as carry ** n (0.9 ** 16 ~ 0.19 of what it
# was), which keeps the seam frames within 0.5 dB PSNR of an unchunked run
# (tests/media/test_chunks.py).
DEFAULT_PRE_ROLL = 16
# No cut closer than this share of a chunk to the end: the last chunk is never a sliver.
_MIN_TAIL_SHARE = 0.5


@dataclass(frozen=True, kw_only=True)
class ChunkSpan:
    """One chunk of a source, in presentation order.

    ``first_frame``/``frame_count``: the chunk's frames among the source's
    (deinterlacing to one frame per field doubles what is written).
    ``start_s``: the presentation time of its first frame (the stream's
    timestamp, in seconds); ``end_s``: where the next chunk starts, or the end
    of the video's last frame (``math.inf`` for the one span of a video whose
    packets carry no usable timestamps).
    """

    index: int
    first_frame: int
    frame_count: int
    start_s: float
    end_s: float


@dataclass(frozen=True, kw_only=True)
class _Index:
    """The video stream's packet index: presentation times sorted, keyframes among them."""

    time_base: Fraction
    pts: list[int]
    keyframes: list[int]
    end: int


def cut_spans(source: Path, *, chunk_seconds: float) -> tuple[ChunkSpan, ...]:
    """Spans of about ``chunk_seconds`` each, cut on keyframes, reading packets only.

    A video shorter than one and a half chunks, or whose packets carry no
    usable timestamps, is one span. Cuts go at the keyframe nearest to each
    multiple of ``chunk_seconds``, never less than half a chunk before the end.
    The file is first checked whole (``check_complete``: the chunks do not
    check it again). Raises InvalidRequest for a ``chunk_seconds`` that is not
    positive, TruncatedVideo, CorruptVideo (and the other MediaErrors of
    ``open_input``) when the file cannot be read; reads the file and changes
    nothing.
    """
    if not chunk_seconds > 0:
        raise InvalidRequest(
            f"chunk seconds must be > 0, got {chunk_seconds}", param="chunk_seconds"
        )
    check_complete(source)
    index = _read_index(source)
    if index is None:
        return (_whole(source),)
    ticks = chunk_seconds / index.time_base
    cuts = _cuts(index, ticks)
    starts = [index.pts[0], *cuts]
    ends = [*cuts, index.end]
    positions = {pts: i for i, pts in enumerate(index.pts)}
    firsts = [positions[s] for s in starts] + [len(index.pts)]
    return tuple(
        ChunkSpan(
            index=n,
            first_frame=firsts[n],
            frame_count=firsts[n + 1] - firsts[n],
            start_s=float(start * index.time_base),
            end_s=float(end * index.time_base),
        )
        for n, (start, end) in enumerate(zip(starts, ends, strict=True))
    )


def _read_index(source: Path) -> _Index | None:
    """The packet index, or None when some frame has no timestamp or two share one."""
    stamps: list[int | None] = []
    keyframes: list[int] = []
    durations: dict[int, int] = {}
    try:
        with open_input(source) as container:
            stream = video_stream(container)
            time_base = Fraction(stream.time_base or FALLBACK_TIME_BASE)
            # Timestamps only: a long video's packets would not fit in memory.
            for packet in container.demux(stream):
                if not packet.size:
                    continue
                stamps.append(packet.pts)
                if packet.pts is not None:
                    durations[packet.pts] = packet.duration or 0
                    if packet.is_keyframe:
                        keyframes.append(packet.pts)
    except av.error.FFmpegError as exc:
        raise media_error(exc, "reading") from exc
    pts = sorted(s for s in stamps if s is not None)
    if not pts or len(pts) != len(stamps) or len(durations) != len(pts):
        return None
    gap = pts[-1] - pts[-2] if len(pts) > 1 else 1
    end = pts[-1] + (durations[pts[-1]] or gap or 1)
    return _Index(time_base=time_base, pts=pts, keyframes=sorted(keyframes), end=end)


def _cuts(index: _Index, ticks: Fraction | float) -> list[int]:
    """The keyframes that start chunks 1, 2, ...: nearest to each multiple of ``ticks``."""
    first = index.pts[0]
    last_cut = index.end - _MIN_TAIL_SHARE * ticks
    cuts: list[int] = []
    target = first + ticks
    while target <= last_cut:
        later = [k for k in index.keyframes if k > (cuts[-1] if cuts else first)]
        if not later:
            break
        nearest = min(later, key=lambda k: abs(k - target))
        if nearest <= last_cut:
            cuts.append(nearest)
        target = max(target, nearest) + ticks
    return cuts


def _whole(source: Path) -> ChunkSpan:
    """The one span of a video whose packets cannot be planned from."""
    with open_input(source) as container:
        stream = video_stream(container)
        return ChunkSpan(
            index=0, first_frame=0, frame_count=stream.frames, start_s=0.0, end_s=math.inf
        )


def pre_roll_for(upscaler: FrameUpscaler) -> int:
    """``DEFAULT_PRE_ROLL`` for an upscaler that carries state between frames, else 0."""
    stateful = isinstance(upscaler, StabilisedUpscaler | RecurrentUpscaler | BidirectionalUpscaler)
    return DEFAULT_PRE_ROLL if stateful else 0


def upscale_chunk(
    *,
    source: InputSource,
    span: ChunkSpan,
    destination: Path,
    upscaler: FrameUpscaler,
    options: VideoOptions,
    hooks: VideoHooks = NO_HOOKS,
    pre_roll: int | None = None,
) -> VideoResult:
    """Upscale the frames of ``span`` into the video-only part ``destination`` (.mp4).

    ``upscaler`` must be fresh for this chunk (one that carries state starts
    from ``pre_roll`` frames before the span; None: ``pre_roll_for(upscaler)``).
    ``options`` and the upscaler's model and factor must be the same for every
    chunk of a source, or ``join_chunks`` refuses the parts. ``hooks.on_frame``
    sees pre-roll frames too; with ``options.frame_rate`` the part holds the
    output grid's frames in the span, up to the next span's first frame. The
    source is not checked whole again (``cut_spans`` did). Raises what
    ``upscale_video`` raises, and InvalidRequest for a destination whose name
    is not .mp4; on any error no file exists under ``destination`` and no
    temporary file is left.
    """
    started = time.monotonic()
    frames_before = pre_roll_for(upscaler) if pre_roll is None else pre_roll
    job = prepare(
        source=source,
        destination=destination,
        upscaler=upscaler,
        options=options,
        hooks=hooks,
        window=_window(source, span, frames_before),
        part=True,
        window_frames=span.frame_count,
    )
    return run_job(job, started=started)


def _window(source: InputSource, span: ChunkSpan, pre_roll: int) -> FrameWindow:
    """``span``'s frames by timestamp; the first span also takes whatever precedes its start."""
    with open_input(source) as container:
        time_base = Fraction(video_stream(container).time_base or FALLBACK_TIME_BASE)
    start = None if span.index == 0 else round(Fraction(span.start_s) / time_base)
    end = None if math.isinf(span.end_s) else round(Fraction(span.end_s) / time_base)
    return FrameWindow(start=start, end=end, preroll=pre_roll)


__all__ = [
    "DEFAULT_PRE_ROLL",
    "ChunkSpan",
    "cut_spans",
    "join_chunks",
    "pre_roll_for",
    "upscale_chunk",
]
