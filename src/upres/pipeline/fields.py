"""Interlaced sources: which field comes first, telecine, and the deinterlacer.

The networks expect progressive pictures: fed two fields woven into one
frame, they sharpen the combing. So the field order is found first, from the
stream's flags and the frames' flags, then checked against the content with
FFmpeg's ``idet`` filter over the first frames (flags lie: progressive-flagged
files with combed pictures exist, and so do wrong field orders). An
interlaced source goes through ``bwdif`` before the model, one frame per
frame or (``double_rate``) one per field, and the output is progressive.
Telecined film (3:2 pulldown: a field repeated every other frame) is
detected and reported; it is deinterlaced like video, not inverse-telecined.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from typing import Literal

import av
import av.error
from av.container import InputContainer
from av.video.frame import VideoFrame
from av.video.stream import VideoStream

from upres.errors import CorruptVideo
from upres.inputs.probe import InputSource, open_input, video_stream
from upres.pipeline.frames import FALLBACK_TIME_BASE

FieldOrder = Literal["progressive", "tff", "bff"]

# How many frames from the start the content check reads.
SCAN_FRAMES = 60
# AVFieldOrder: TT and TB show the top field first, BB and BT the bottom one.
_FLAG_ORDERS: dict[int, FieldOrder] = {1: "progressive", 2: "tff", 3: "bff", 4: "tff", 5: "bff"}
# idet judges each frame by itself combed top-first, combed bottom-first or
# progressive. The content overrides the flags when one order holds at least
# this share of the judged frames, ...
_COMBED_SHARE = 0.5
# ... at least this many frames (a still opening decides nothing) ...
_MIN_COMBED = 4
# ... and the other order at most this share of it: per-pixel noise or grain
# reads as combing too, but of both orders alike.
_OTHER_ORDER_SHARE = 0.25
# In 3:2 pulldown 2 frames of 5 repeat a field; idet spots most of them.
_TELECINE_SHARE = 0.2


@dataclass(frozen=True, kw_only=True)
class FieldScan:
    """What was learned about a source's fields.

    ``flagged`` is the order the flags claim (None when they say nothing);
    ``order`` the one upres goes by; ``combed`` how many of ``frames`` the
    content check found combed in the more frequent order.
    """

    order: FieldOrder
    flagged: FieldOrder | None
    combed: int
    frames: int
    telecined: bool

    @property
    def interlaced(self) -> bool:
        return self.order != "progressive"


@dataclass(frozen=True, kw_only=True)
class Deinterlace:
    """How the decoder deinterlaces: which field is first, one output frame per field or not."""

    order: Literal["tff", "bff"]
    double_rate: bool

    @property
    def rate(self) -> int:
        """Output frames per input frame."""
        return 2 if self.double_rate else 1


@dataclass
class _Idet:
    """idet's running totals (it reports them on every frame; the last ones count)."""

    tff: int = 0
    bff: int = 0
    progressive: int = 0
    repeated: int = 0
    repeated_both: bool = False
    frames: int = 0


def scan_fields(source: InputSource, *, frames: int = SCAN_FRAMES) -> FieldScan:
    """The field order of ``source``'s video from its flags and its first ``frames`` frames.

    Raises the MediaError of ``open_input`` and ``video_stream``.
    """
    with open_input(source) as container:
        stream = video_stream(container)
        stream.codec_context.thread_type = "AUTO"
        flagged = _FLAG_ORDERS.get(stream.codec_context.field_order)
        idet, frame_flag = _run_idet(container, stream, frames)
    if flagged is None and frame_flag:
        flagged = "tff"
    return decide(flagged, idet)


def decide(flagged: FieldOrder | None, idet: _Idet) -> FieldScan:
    """The order to go by: the content's when it is clearly combed one way, else the flags'."""
    judged = idet.tff + idet.bff + idet.progressive
    major, minor = max(idet.tff, idet.bff), min(idet.tff, idet.bff)
    order: FieldOrder = flagged or "progressive"
    if (
        major >= _MIN_COMBED
        and major >= _COMBED_SHARE * judged
        and minor <= _OTHER_ORDER_SHARE * major
    ):
        order = "tff" if idet.tff >= idet.bff else "bff"
    telecined = (
        order != "progressive"
        and idet.repeated_both
        and idet.repeated >= _TELECINE_SHARE * max(idet.frames, 1)
    )
    return FieldScan(
        order=order, flagged=flagged, combed=major, frames=idet.frames, telecined=telecined
    )


def deinterlace_for(scan: FieldScan, *, double_rate: bool) -> Deinterlace | None:
    """How to deinterlace a source scanned as ``scan`` (None when it is progressive)."""
    if scan.order == "progressive":
        return None
    return Deinterlace(order=scan.order, double_rate=double_rate)


def field_notes(scan: FieldScan, how: Deinterlace | None) -> tuple[str, ...]:
    """What the user should hear about the fields: deinterlacing, telecine, lying flags."""
    if how is None:
        return ()
    per = "one frame per field" if how.double_rate else "one frame per frame"
    notes = [f"the source is interlaced ({how.order.upper()}): deinterlaced (bwdif, {per})"]
    if scan.flagged != scan.order:
        notes.append(f"its flags say {scan.flagged or 'nothing'}; the pictures say {scan.order}")
    if scan.telecined:
        notes.append(
            "it is telecined film (3:2 pulldown); it was deinterlaced, not inverse-telecined"
        )
    return tuple(notes)


def _run_idet(container: InputContainer, stream: VideoStream, limit: int) -> tuple[_Idet, bool]:
    """idet's totals over the first ``limit`` frames, and whether a frame was flagged interlaced.

    The check is best effort: damage ends it early with what it counted (the
    decoding proper applies the damage policy).
    """
    totals = _Idet()
    flagged = False
    graph: av.filter.Graph | None = None
    try:
        for count, frame in enumerate(_decoded(container, stream), start=1):
            flagged = flagged or frame.interlaced_frame
            graph = graph or _graph(frame, stream, "idet")
            for out in _filtered(graph, frame):
                totals = _totals(out.metadata)
            if count >= limit:
                break
        for out in _filtered(graph, None) if graph is not None else ():
            totals = _totals(out.metadata)
    except av.error.FFmpegError:
        pass
    return totals, flagged


def _decoded(container: InputContainer, stream: VideoStream) -> Iterator[VideoFrame]:
    """The frames of ``stream``, skipping packets the decoder rejects."""
    for packet in container.demux(stream):
        try:
            yield from stream.decode(packet)
        except av.error.InvalidDataError:
            continue


def _totals(metadata: dict[str, str]) -> _Idet:
    def count(key: str) -> int:
        return round(float(metadata.get(f"lavfi.idet.{key}", "0")))

    top, bottom = count("repeated.top"), count("repeated.bottom")
    return _Idet(
        tff=count("single.tff"),
        bff=count("single.bff"),
        progressive=count("single.progressive"),
        repeated=top + bottom,
        repeated_both=top > 0 and bottom > 0,
        frames=count("repeated.neither") + top + bottom,
    )


def deinterlaced(
    frames: Iterator[VideoFrame], stream: VideoStream, how: Deinterlace
) -> Iterator[VideoFrame]:
    """``frames`` through bwdif: progressive frames, ``how.rate`` per input frame.

    Timestamps stay in the stream's time base divided by ``how.rate``.
    Raises CorruptVideo when the filter rejects a frame.
    """
    mode = "send_field" if how.double_rate else "send_frame"
    bwdif = f"bwdif=mode={mode}:parity={how.order}:deint=all"
    time_base = Fraction(stream.time_base or FALLBACK_TIME_BASE) / how.rate
    graph: av.filter.Graph | None = None
    try:
        for frame in frames:
            graph = graph or _graph(frame, stream, bwdif)
            yield from _rescaled(_filtered(graph, frame), time_base)
        if graph is not None:
            yield from _rescaled(_filtered(graph, None), time_base)
    except av.error.FFmpegError as exc:
        raise CorruptVideo(f"The video could not be deinterlaced: {exc.strerror}") from exc


def _rescaled(frames: Iterator[VideoFrame], time_base: Fraction) -> Iterator[VideoFrame]:
    """``frames`` with pts and duration in ``time_base`` (bwdif halves the time base in
    either mode)."""
    for frame in frames:
        if frame.time_base is not None:
            ratio = Fraction(frame.time_base) / time_base
            if frame.pts is not None:
                frame.pts = round(frame.pts * ratio)
            frame.duration = round((frame.duration or 0) * ratio)
            frame.time_base = time_base
        yield frame


def _graph(first: VideoFrame, stream: VideoStream, chain: str) -> av.filter.Graph:
    """buffer -> ``chain`` -> buffersink, for frames shaped like ``first``."""
    graph = av.filter.Graph()
    time_base = Fraction(stream.time_base or FALLBACK_TIME_BASE)
    source = graph.add(
        "buffer",
        f"video_size={first.width}x{first.height}:pix_fmt={first.format.name}"
        f":time_base={time_base.numerator}/{time_base.denominator}:pixel_aspect=1/1",
    )
    name, _, args = chain.partition("=")
    middle = graph.add(name, args or None)
    sink = graph.add("buffersink")
    source.link_to(middle)
    middle.link_to(sink)
    graph.configure()
    return graph


def _filtered(graph: av.filter.Graph, frame: VideoFrame | None) -> Iterator[VideoFrame]:
    """Push ``frame`` (None: the end) and yield every frame the graph has ready."""
    graph.push(frame)
    while True:
        try:
            out = graph.pull()
        except (av.error.BlockingIOError, av.error.EOFError):
            return
        if isinstance(out, VideoFrame):
            yield out
