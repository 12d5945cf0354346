"""Input file -> a lazy stream of RGB frame batches with their exact timestamps.

An interlaced source is deinterlaced here (``DecodeOptions.deinterlace``,
see ``upres.pipeline.fields``); timestamps are then in the stream's time base
divided by its rate.

Damaged input policy: packets are decoded one by one. A packet the decoder
rejects is skipped and counted (the frames around it keep their timestamps);
frames the decoder repaired by error concealment are kept and counted. When
more than ``max_skipped_fraction`` of the video packets are rejected, or no
frame decodes at all, decoding fails with CorruptVideo (EmptyVideo when the
stream simply holds no frame).
"""

from __future__ import annotations

from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass

import av
import av.error
import numpy as np
import torch
from av.codec.hwaccel import HWAccel, hwdevices_available
from av.video.frame import VideoFrame

from upres.domain.media import VideoInfo
from upres.errors import CorruptVideo, EmptyVideo, MediaError
from upres.inputs.probe import (
    NO_FRAME_MESSAGE,
    InputSource,
    media_error,
    open_input,
    video_stream,
)
from upres.pipeline.colorimetry import (
    RANGE_FULL,
    TO_RGB_DEEP_FLAGS,
    TO_RGB_FLAGS,
    YuvConversion,
    conversion_for,
)
from upres.pipeline.fields import Deinterlace, deinterlaced
from upres.pipeline.frames import FrameBatch
from upres.pipeline.window import WHOLE, FrameWindow, Timed, window_packets, windowed


@dataclass(frozen=True, kw_only=True)
class DecodeOptions:
    """How to decode one video: output size and depth, colour conversion, batching."""

    width: int
    height: int
    high_bit_depth: bool
    conversion: YuvConversion
    batch_size: int = 1
    hardware: bool = False
    max_skipped_fraction: float = 0.1
    deinterlace: Deinterlace | None = None

    @classmethod
    def for_video(
        cls,
        info: VideoInfo,
        *,
        batch_size: int = 1,
        hardware: bool = False,
        deinterlace: Deinterlace | None = None,
    ) -> DecodeOptions:
        """How to decode the video ``info`` describes: at its size, deeper than 8 bits
        when it is, through the conversion its colour tags ask for."""
        return cls(
            width=info.width,
            height=info.height,
            high_bit_depth=info.bit_depth > 8,
            conversion=conversion_for(info.color, pix_fmt=info.pix_fmt, height=info.height),
            batch_size=batch_size,
            hardware=hardware,
            deinterlace=deinterlace,
        )


@dataclass(frozen=True, kw_only=True)
class TimedBatch:
    """A batch of frames plus each frame's duration (stream time base).

    A ``preroll`` batch only primes the upscaler's state: its output is not written.
    """

    frames: FrameBatch
    durations: tuple[int, ...]
    preroll: bool = False


@dataclass(frozen=True, kw_only=True)
class DecodeSummary:
    """The last item of a decode: what was read and what was damaged."""

    frames: int
    packets: int
    skipped_packets: int
    concealed_frames: int
    hardware: bool


DecodeItem = TimedBatch | DecodeSummary


@dataclass
class _Tally:
    """Counters of one decode call (local to that call)."""

    packets: int = 0
    skipped: int = 0
    concealed: int = 0
    frames: int = 0


def decode(
    source: InputSource, *, options: DecodeOptions, window: FrameWindow = WHOLE
) -> Generator[DecodeItem]:
    """Yield TimedBatches in presentation order, then one DecodeSummary.

    With a ``window``, only its frames (see ``upres.pipeline.window``), after its
    pre-roll batches; the summary counts the window's frames.

    With ``options.hardware`` CUDA decoding is tried first and software
    decoding takes over when it fails before the first batch.
    Raises CorruptVideo, EmptyVideo or UnsupportedCodec (see the module policy).
    """
    if options.hardware and "cuda" in hwdevices_available():
        hwaccel = HWAccel(device_type="cuda", allow_software_fallback=True)
        items = _decode(source, options, window, hwaccel)
        first = _first_or_none(items)
        if first is not None:
            yield first
            yield from items
            return
    yield from _decode(source, options, window, None)


def _first_or_none(items: Generator[DecodeItem]) -> DecodeItem | None:
    """The first item, or None (and ``items`` closed) when getting it fails."""
    try:
        return next(items)
    except (MediaError, av.error.FFmpegError):
        items.close()
        return None


def _decode(
    source: InputSource, options: DecodeOptions, window: FrameWindow, hwaccel: HWAccel | None
) -> Generator[DecodeItem]:
    tally = _Tally()
    with open_input(source, hwaccel=hwaccel) as container:
        stream = video_stream(container)
        stream.codec_context.thread_type = "AUTO"
        frames = _frames(lambda: window_packets(container, stream, window), stream, tally)
        how = options.deinterlace
        if how is not None:
            frames = deinterlaced(_stamped(frames), stream, how)
        chosen = windowed(_timed(frames), window, how.rate if how is not None else 1)
        yield from _batches(chosen, options, tally)
    yield _summary(tally, options, hardware=hwaccel is not None)


def _frames(
    packets: Callable[[], Iterator[av.Packet[av.video.stream.VideoStream]]],
    stream: av.video.stream.VideoStream,
    tally: _Tally,
) -> Iterator[VideoFrame]:
    try:
        for packet in packets():
            tally.packets += packet.size > 0
            try:
                decoded = stream.decode(packet)
            except av.error.InvalidDataError:
                tally.skipped += 1
                continue
            tally.concealed += sum(f.is_corrupt for f in decoded)
            yield from decoded
    except av.error.FFmpegError as exc:
        raise media_error(exc, "decoding") from exc


def _timed(frames: Iterator[VideoFrame]) -> Iterator[Timed]:
    """(frame, pts, duration) with strictly increasing pts; a frame's duration reaches the next."""
    previous: tuple[VideoFrame, int] | None = None
    gap = 1
    for frame in frames:
        pts = frame.pts
        if previous is not None:
            last, last_pts = previous
            if pts is None or pts <= last_pts:
                pts = last_pts + max(gap, 1)
            gap = pts - last_pts
            yield last, last_pts, gap
        elif pts is None:
            pts = 0
        previous = (frame, pts)
    if previous is not None:
        last, last_pts = previous
        yield last, last_pts, int(last.duration or 0) or gap


def _stamped(frames: Iterator[VideoFrame]) -> Iterator[VideoFrame]:
    """``frames`` with the strictly increasing pts of ``_timed`` written into them."""
    for frame, pts, _ in _timed(frames):
        frame.pts = pts
        yield frame


def _batches(
    timed: Iterator[tuple[Timed, bool]], options: DecodeOptions, tally: _Tally
) -> Iterator[TimedBatch]:
    """Batches of ``options.batch_size`` frames; pre-roll frames never share a batch
    with the others."""
    pixels: list[np.ndarray] = []
    pts: list[int] = []
    durations: list[int] = []
    preroll = False
    for (frame, frame_pts, duration), is_preroll in timed:
        if pts and is_preroll != preroll:
            yield _batch(pixels, pts, durations, tally, preroll=preroll)
            pixels, pts, durations = [], [], []
        preroll = is_preroll
        pixels.append(to_rgb(frame, options))
        pts.append(frame_pts)
        durations.append(duration)
        if len(pts) == options.batch_size:
            yield _batch(pixels, pts, durations, tally, preroll=preroll)
            pixels, pts, durations = [], [], []
    if pts:
        yield _batch(pixels, pts, durations, tally, preroll=preroll)


def _batch(
    pixels: list[np.ndarray],
    pts: list[int],
    durations: list[int],
    tally: _Tally,
    *,
    preroll: bool,
) -> TimedBatch:
    batch = FrameBatch(
        pixels=torch.from_numpy(np.stack(pixels)), pts=tuple(pts), first_index=tally.frames
    )
    if not preroll:
        tally.frames += len(pts)
    return TimedBatch(frames=batch, durations=tuple(durations), preroll=preroll)


def to_rgb(frame: VideoFrame, options: DecodeOptions) -> np.ndarray:
    """(H, W, 3) full-range RGB, uint8 or uint16, converted with the source's matrix and range."""
    conv = options.conversion
    try:
        rgb = frame.reformat(
            width=options.width,
            height=options.height,
            format="rgb48le" if options.high_bit_depth else "rgb24",
            src_colorspace=conv.sws_matrix,
            dst_colorspace=conv.sws_matrix,
            interpolation=TO_RGB_DEEP_FLAGS if options.high_bit_depth else TO_RGB_FLAGS,
            src_color_range=conv.yuv_range,
            dst_color_range=RANGE_FULL,
        )
    except av.error.FFmpegError as exc:
        raise media_error(exc, "converting a frame to RGB") from exc
    return rgb.to_ndarray()


def _summary(tally: _Tally, options: DecodeOptions, *, hardware: bool) -> DecodeSummary:
    if tally.frames == 0:
        if tally.skipped:
            raise CorruptVideo("The video is damaged: none of its frames decode.")
        raise EmptyVideo(NO_FRAME_MESSAGE)
    if tally.skipped > options.max_skipped_fraction * max(tally.packets, 1):
        raise CorruptVideo(
            f"The video is damaged: {tally.skipped} of {tally.packets} video packets "
            "could not be decoded."
        )
    return DecodeSummary(
        frames=tally.frames,
        packets=tally.packets,
        skipped_packets=tally.skipped,
        concealed_frames=tally.concealed,
        hardware=hardware,
    )
