"""Frame batches + the source's other streams -> an mp4 (H.264, H.265 or AV1).

The output keeps what the viewer sees of the input: every frame at its own
timestamp (VFR stays VFR), display rotation, pixel aspect ratio, colour
matrix/range/primaries/transfer tags, and the other streams as
``upres.pipeline.sidestreams`` decides (audio copied packet for packet).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, replace
from fractions import Fraction
from pathlib import Path

import av
import av.error
import numpy as np
import torch
from av.container import OutputContainer
from av.video.codeccontext import VideoCodecContext
from av.video.frame import VideoFrame
from av.video.stream import VideoStream

from upres.domain.media import EncodeSettings, HdrInfo, VideoCodec, VideoInfo
from upres.errors import EncodeError
from upres.inputs.probe import open_input, video_stream
from upres.pipeline.colorimetry import RANGE_FULL, TO_YUV_FLAGS, YuvConversion
from upres.pipeline.decode import TimedBatch
from upres.pipeline.frames import FALLBACK_TIME_BASE
from upres.pipeline.hdr import (
    choose_codec,
    dolby_vision_note,
    needs_deep_output,
    svtav1_params,
    x265_params,
)
from upres.pipeline.metadata import copy_stream_metadata
from upres.pipeline.sidestreams import Interleaver, add_side_streams, mux, packet_seconds

_ENCODERS: dict[VideoCodec, str] = {"h264": "libx264", "h265": "libx265", "av1": "libsvtav1"}
_DEFAULT_CRF: dict[VideoCodec, int] = {"h264": 18, "h265": 20, "av1": 28}
_DEFAULT_PRESET: dict[VideoCodec, str] = {"h264": "medium", "h265": "fast", "av1": "8"}
_FAST_SOURCE_PRESET = "veryfast"
_TEN_BIT = "yuv420p10le"
# H.264 can carry 10 bits (High 10), but browsers and phones rarely play it,
# so H.264 output stays 8-bit yuv420p; H.265 and AV1 keep a deep source deep.
_DEEP_CODECS: frozenset[VideoCodec] = frozenset({"h265", "av1"})
_PROGRESSIVE = 1  # AVFieldOrder AV_FIELD_PROGRESSIVE
# x264 and x265 code 4:2:0 in whole chroma samples, so an odd width or height
# cannot be 4:2:0 there; AV1 can. Such frames keep every chroma sample instead
# (4:4:4): the output is exactly the input's size, and needs no crop metadata
# that most players ignore (README, "What the output keeps").
_FULL_CHROMA = {"yuv420p": "yuv444p", _TEN_BIT: "yuv444p10le"}
_ODD_420_CODECS: frozenset[VideoCodec] = frozenset({"av1"})
_ISO_MUXERS = frozenset({"mp4", "mov"})
_SVT_LOG, _SVT_ERRORS_ONLY = "SVT_LOG", "1"
# The index at the front; edit lists (a stream that starts late, like MPEG-TS
# video after its audio) in 90 kHz ticks, not the default milliseconds, so a
# start is kept to the tick instead of moving by up to half a millisecond.
_ISO_OPTIONS = {"movflags": "+faststart", "movie_timescale": "90000"}
_MIN_TIMESCALE = 10_000


def keeping_up(settings: EncodeSettings, *, fast_source: bool) -> EncodeSettings:
    """``settings``, with x264's preset lowered to ``veryfast`` for a ``fast_source``.

    A fast model on a GPU makes 4K frames faster than x264 medium can encode
    them on the host's CPU (docs/BENCHMARKS.md, "The encoder at 4K"):
    veryfast needs about half the CPU per frame at the same CRF. A preset the
    user chose is kept.
    """
    if not fast_source or settings.preset is not None or settings.codec not in (None, "h264"):
        return settings
    return replace(settings, preset=_FAST_SOURCE_PRESET)


@dataclass(frozen=True, kw_only=True)
class OutputPlan:
    """Everything about the output video stream, decided before the first frame.

    ``rate`` is 2 when each input frame becomes two (field-rate
    deinterlacing): the time base is halved and the frame rate doubled.
    ``time_base``, when set, replaces that (a new frame rate: see
    ``upres.pipeline.interpolate``); ``stretch`` > 1 is slow motion, whose
    output cannot carry the source's timed streams (audio, subtitles).
    ``notes`` say what upres chose for the user (a codec switch, Dolby Vision dropped).
    """

    width: int
    height: int
    pix_fmt: str
    conversion: YuvConversion
    rotation: int
    sample_aspect_ratio: Fraction | None
    frame_rate: Fraction | None
    codec: VideoCodec
    settings: EncodeSettings
    hdr: HdrInfo
    rate: int
    notes: tuple[str, ...]
    time_base: Fraction | None = None
    stretch: int = 1

    @property
    def encoder(self) -> str:
        return _ENCODERS[self.codec]


def plan_output(
    info: VideoInfo,
    *,
    scale: int,
    conversion: YuvConversion,
    settings: EncodeSettings,
    rate: int = 1,
) -> OutputPlan:
    """The output for ``info`` upscaled ``scale`` times, ``rate`` frames per input frame.

    The size is exactly ``scale`` times the input's (odd sizes in 4:4:4 with
    H.264 and H.265, see ``_FULL_CHROMA``). The codec is ``choose_codec``'s; an
    HDR or deeper than 8-bit source is written 10-bit with H.265 and AV1 (H.264
    output is 8-bit), with its HDR10 metadata.
    Raises EncodeError when the encoder is missing.
    """
    codec, codec_note = choose_codec(settings, info)
    try:
        encoder = av.codec.Codec(_ENCODERS[codec], "w")
    except av.codec.codec.UnknownCodecError as exc:
        raise EncodeError(f"The {_ENCODERS[codec]} encoder is not available.") from exc
    formats = encoder.video_formats or []
    deep = (
        needs_deep_output(info)
        and codec in _DEEP_CODECS
        and any(f.name == _TEN_BIT for f in formats)
    )
    notes = (codec_note, dolby_vision_note(info))
    width, height = info.width * scale, info.height * scale
    return OutputPlan(
        width=width,
        height=height,
        pix_fmt=chroma_for_size(_TEN_BIT if deep else "yuv420p", width, height, codec),
        conversion=conversion,
        rotation=info.rotation,
        sample_aspect_ratio=info.sample_aspect_ratio,
        frame_rate=info.average_fps * rate if info.average_fps else None,
        codec=codec,
        settings=settings,
        hdr=info.hdr,
        rate=rate,
        notes=tuple(n for n in notes if n is not None),
    )


def chroma_for_size(pix_fmt: str, width: int, height: int, codec: VideoCodec) -> str:
    """``pix_fmt``, or its 4:4:4 twin when ``codec`` cannot code this odd size in 4:2:0."""
    odd = width % 2 or height % 2
    if not odd or codec in _ODD_420_CODECS:
        return pix_fmt
    return _FULL_CHROMA.get(pix_fmt, pix_fmt)


def encode(
    source: Path,
    target: Path,
    batches: Iterable[TimedBatch],
    *,
    plan: OutputPlan,
    on_batch: Callable[[int], None],
    container: str = "mp4",
    part: bool = False,
) -> tuple[str, ...]:
    """Write ``batches`` and the source's copyable streams to ``target``.

    ``container`` is the muxer (``upres.pipeline.destination``); mp4 and mov get
    their index at the front (+faststart). A ``part`` (one chunk of a chunked
    upscale, see ``upres.pipeline.chunks``) is the video alone, in an mp4 that
    keeps every timestamp exactly (``part_muxer_options``), with parameter
    sets repeated in the stream where the encoder can.

    Calls ``on_batch(frames)`` after each batch is written. Returns a description
    of each source stream that was dropped. Raises EncodeError when writing fails;
    errors raised by ``batches`` or ``on_batch`` propagate unchanged.
    """
    with open_input(source) as src:
        video_in = video_stream(src)
        options = part_muxer_options(output_time_base(video_in, plan)) if part else None
        with open_output(target, container, options) as out:
            video = _add_video(out, video_in, plan, part=part)
            _open_encoder(video)
            routes, dropped = (
                ({}, ()) if part else add_side_streams(src, out, video_in, stretch=plan.stretch)
            )
            side = Interleaver(src, routes, out)
            _write(out, video, side=side, batches=batches, plan=plan, on_batch=on_batch)
    return dropped


def _write(
    out: OutputContainer,
    video: VideoStream,
    *,
    side: Interleaver,
    batches: Iterable[TimedBatch],
    plan: OutputPlan,
    on_batch: Callable[[int], None],
) -> None:
    writer = _VideoWriter(out, video, side)
    for timed in batches:
        for frame, duration in _video_frames(timed, plan, video):
            writer.write(frame, duration)
        on_batch(timed.frames.count)
    writer.finish()


def part_muxer_options(time_base: Fraction) -> dict[str, str]:
    """mp4 muxer options that keep every timestamp in ``time_base`` exact.

    The track's timescale is the time base's denominator (doubled up to at
    least 10000, as the muxer does by itself), and the edit list that carries
    a late start is written in that same timescale instead of the movie's
    default milliseconds, so a part starting anywhere reads back to the tick.
    """
    scale = Fraction(time_base).denominator
    while scale < _MIN_TIMESCALE:
        scale *= 2
    return {"video_track_timescale": str(scale), "movie_timescale": str(scale)}


def _open_encoder(video: VideoStream) -> None:
    """Open the encoder now, then undo its real-time scheduling.

    SVT-AV1 run by root switches the calling thread to SCHED_FIFO priority
    99, and the threads it starts with it: a busy encoder would then starve
    everything else on the machine, the API included, and every thread this
    worker starts later (torch's spin-waiting OpenMP team among them) would
    inherit the priority and stall behind the others. Raises EncodeError
    when the encoder refuses its settings.
    """
    # SVT-AV1 prints a banner and its info lines straight to stderr (not through
    # FFmpeg's log): errors only, unless the user set SVT_LOG.
    os.environ.setdefault(_SVT_LOG, _SVT_ERRORS_ONLY)
    try:
        video.codec_context.open()
    except av.error.FFmpegError as exc:
        raise EncodeError(f"The encoder refused its settings: {exc.strerror}") from exc
    demote_realtime_threads()


def demote_realtime_threads() -> int:
    """Move every SCHED_FIFO or SCHED_RR thread of this process to SCHED_OTHER.

    Returns how many threads were moved (0 where Linux's per-thread scheduling
    interface is missing).
    """
    tasks = Path("/proc/self/task")
    if not tasks.is_dir():
        return 0
    moved = 0
    for entry in tasks.iterdir():
        try:
            if os.sched_getscheduler(int(entry.name)) in (os.SCHED_FIFO, os.SCHED_RR):
                os.sched_setscheduler(int(entry.name), os.SCHED_OTHER, os.sched_param(0))
                moved += 1
        except (ProcessLookupError, PermissionError):
            continue  # the thread ended meanwhile, or is not ours to change
    return moved


@contextmanager
def open_output(
    target: Path, muxer: str, options: dict[str, str] | None = None
) -> Iterator[OutputContainer]:
    """A ``muxer`` whose av errors become EncodeError (mp4 and mov: ``_ISO_OPTIONS``
    unless ``options`` are given)."""
    if options is None:
        options = _ISO_OPTIONS if muxer in _ISO_MUXERS else {}
    try:
        container = av.open(str(target), mode="w", format=muxer, options=options)
    except av.error.FFmpegError as exc:
        raise EncodeError(f"Cannot create the output file: {exc.strerror}") from exc
    try:
        yield container
    except BaseException:
        with suppress(av.error.FFmpegError):
            container.close()
        raise
    try:
        container.close()
    except av.error.FFmpegError as exc:
        raise EncodeError(f"Cannot finish the output file: {exc.strerror}") from exc


def _add_video(
    out: OutputContainer, video_in: VideoStream, plan: OutputPlan, *, part: bool
) -> VideoStream:
    try:
        stream = out.add_stream(plan.encoder, rate=plan.frame_rate)
    except av.error.FFmpegError as exc:
        raise EncodeError(f"The {plan.encoder} encoder is not available.") from exc
    if not isinstance(stream, VideoStream):
        raise EncodeError(f"{plan.encoder} is not a video encoder.")
    stream.width, stream.height, stream.pix_fmt = plan.width, plan.height, plan.pix_fmt
    stream.time_base = output_time_base(video_in, plan)
    _configure(stream.codec_context, video_in, plan, part=part)
    if plan.rotation:
        stream.set_display_rotation(plan.rotation)
    copy_stream_metadata(video_in, stream)
    return stream


def output_time_base(video_in: VideoStream, plan: OutputPlan) -> Fraction:
    """``plan.time_base``, else the input's divided by ``plan.rate`` (field-rate output
    has frames in between)."""
    if plan.time_base is not None:
        return plan.time_base
    return Fraction(video_in.time_base or FALLBACK_TIME_BASE) / plan.rate


def _configure(
    ctx: VideoCodecContext, video_in: VideoStream, plan: OutputPlan, *, part: bool
) -> None:
    ctx.time_base = output_time_base(video_in, plan)
    ctx.field_order = _PROGRESSIVE
    ctx.thread_count = plan.settings.threads
    tags = plan.conversion.tags
    ctx.color_range, ctx.colorspace = tags.color_range, tags.matrix
    ctx.color_primaries, ctx.color_trc = tags.primaries, tags.transfer
    if plan.sample_aspect_ratio:
        ctx.sample_aspect_ratio = plan.sample_aspect_ratio
    vfr = _is_vfr(video_in)
    if vfr:
        # With B-frames, mp4 sample durations follow the reordered decode times, which
        # stretches a VFR stream's end; without them every frame keeps its exact span.
        ctx.max_b_frames = 0
    ctx.options = _encoder_options(plan, vfr=vfr, part=part)


def _is_vfr(video_in: VideoStream) -> bool:
    average, base = video_in.average_rate, video_in.base_rate
    return bool(average and base and average != base)


def _encoder_options(plan: OutputPlan, *, vfr: bool, part: bool) -> dict[str, str]:
    codec, settings = plan.codec, plan.settings
    crf = settings.crf if settings.crf is not None else _DEFAULT_CRF[codec]
    options = {"crf": str(crf), "preset": settings.preset or _DEFAULT_PRESET[codec]}
    deep = plan.pix_fmt == _TEN_BIT
    if codec == "h265":
        # Parts repeat VPS/SPS/PPS before each keyframe: a joined stream decodes from any
        # part's start.
        params = [
            "log-level=error",
            *(["bframes=0"] if vfr else []),
            *(["repeat-headers=1"] if part else []),
        ]
        options["x265-params"] = ":".join(params + (x265_params(plan.hdr) if deep else []))
    if codec == "av1" and deep and svtav1_params(plan.hdr):
        options["svtav1-params"] = ":".join(svtav1_params(plan.hdr))
    return options


class _VideoWriter:
    """Encodes frames and muxes their packets, each with its frame's own duration.

    libx264 does not carry frame durations into packets, so the last frame's
    span (and a VFR stream's end) would be guessed by the muxer; they are
    restored here by presentation time.
    """

    def __init__(self, out: OutputContainer, video: VideoStream, side: Interleaver) -> None:
        self._out, self._video, self._side = out, video, side
        self._durations: dict[int, int] = {}

    def write(self, frame: VideoFrame, duration: int) -> None:
        if frame.pts is not None:
            self._durations[frame.pts] = duration
        self._mux(frame)

    def finish(self) -> None:
        self._mux(None)
        self._side.finish()

    def _mux(self, frame: VideoFrame | None) -> None:
        try:
            packets = self._video.encode(frame)
        except av.error.FFmpegError as exc:
            raise EncodeError(f"The video encoder failed: {exc.strerror}") from exc
        for packet in packets:
            if packet.pts is not None and packet.pts in self._durations:
                packet.duration = self._durations.pop(packet.pts)
            self._side.mux_until(packet_seconds(packet))
            mux(self._out, packet)


def _video_frames(
    timed: TimedBatch, plan: OutputPlan, video: VideoStream
) -> Iterator[tuple[VideoFrame, int]]:
    pixels = timed.frames.pixels
    for i, (pts, duration) in enumerate(zip(timed.frames.pts, timed.durations, strict=True)):
        frame = from_rgb(pixels[i], plan)
        frame.pts = pts
        frame.time_base = video.codec_context.time_base
        yield frame, duration


def from_rgb(pixels: torch.Tensor, plan: OutputPlan) -> VideoFrame:
    """One (H, W, 3) uint8/uint16 RGB tensor -> a tagged YUV frame for the encoder."""
    array = np.ascontiguousarray(pixels.numpy())
    rgb_format = "rgb48le" if array.dtype == np.uint16 else "rgb24"
    conv = plan.conversion
    try:
        frame = VideoFrame.from_ndarray(array, format=rgb_format).reformat(
            format=plan.pix_fmt,
            src_colorspace=conv.sws_matrix,
            dst_colorspace=conv.sws_matrix,
            interpolation=TO_YUV_FLAGS,
            src_color_range=RANGE_FULL,
            dst_color_range=conv.yuv_range,
        )
    except av.error.FFmpegError as exc:
        raise EncodeError(f"Cannot convert frames for the encoder: {exc.strerror}") from exc
    tags = conv.tags
    frame.color_range, frame.colorspace = tags.color_range, tags.matrix
    frame.color_primaries, frame.color_trc = tags.primaries, tags.transfer
    return frame
