"""Frame batches + the source's other streams -> an mp4 (H.264, H.265 or AV1).

The output keeps what the viewer sees of the input: every frame at its own
timestamp (VFR stays VFR), display rotation, pixel aspect ratio, colour
matrix/range/primaries/transfer tags, and the other streams as
``upres.pipeline.sidestreams`` decides (audio copied packet for packet).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager, suppress
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

from upres.errors import EncodeError
from upres.inputs.probe import InputSource, open_input, video_stream
from upres.pipeline.colorimetry import RANGE_FULL, TO_YUV_FLAGS
from upres.pipeline.decode import TimedBatch
from upres.pipeline.encoder_process import demote_realtime_threads
from upres.pipeline.frames import FALLBACK_TIME_BASE
from upres.pipeline.metadata import copy_stream_metadata
from upres.pipeline.output_plan import OutputPlan, encoder_options
from upres.pipeline.sidestreams import Interleaver, add_side_streams, mux, packet_seconds

_PROGRESSIVE = 1  # AVFieldOrder AV_FIELD_PROGRESSIVE
_ISO_MUXERS = frozenset({"mp4", "mov"})
# The index at the front; edit lists (a stream that starts late, like MPEG-TS
# video after its audio) in 90 kHz ticks, not the default milliseconds, so a
# start is kept to the tick instead of moving by up to half a millisecond.
_ISO_OPTIONS = {"movflags": "+faststart", "movie_timescale": "90000"}
_MIN_TIMESCALE = 10_000


def encode(
    source: InputSource,
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
    try:
        video.codec_context.open()
    except av.error.FFmpegError as exc:
        raise EncodeError(f"The encoder refused its settings: {exc.strerror}") from exc
    demote_realtime_threads()


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
    ctx.options = encoder_options(plan, vfr=vfr, part=part)


def _is_vfr(video_in: VideoStream) -> bool:
    average, base = video_in.average_rate, video_in.base_rate
    return bool(average and base and average != base)


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
