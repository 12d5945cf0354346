"""Input file -> ``VideoInfo``, or a typed ``MediaError`` saying what is wrong with it.

Probing demuxes metadata and decodes the first frame only (to learn the
display rotation and to prove the stream decodes). It works on a path or on
any seekable binary file-like object (the API reads over HTTP range requests),
and on a ``RangedInput`` (a stored input a chunk reads only in part).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from fractions import Fraction
from pathlib import Path
from typing import BinaryIO

import av
import av.error
from av.codec.hwaccel import HWAccel
from av.container import InputContainer
from av.video.frame import VideoFrame
from av.video.stream import VideoStream

from upres.domain.media import ColorInfo, MediaLimits, VideoInfo
from upres.errors import (
    CorruptVideo,
    EmptyVideo,
    FrameTooLarge,
    MediaError,
    NotAVideo,
    NoVideoStream,
    UnknownDuration,
    UnsupportedCodec,
    UpresError,
    VideoTooLong,
)
from upres.inputs.hdr_metadata import hdr_info
from upres.inputs.ranged import RangedInput

# Where a video is read from: a local file, an open file object, or a stored
# input opened afresh for each pass over it.
MediaSource = Path | BinaryIO | RangedInput
# What a pass over a video opens more than once: not an open file object.
InputSource = Path | RangedInput

# Probing (the first frames) and decoding (all of them) reach the same verdict.
NO_FRAME_MESSAGE = "The video stream holds no frame."
# Leading box types of an ISO-BMFF (mp4/mov) file: such a file that will not open is
# damaged or truncated rather than "not a video".
_ISO_BOXES = (b"ftyp", b"moov", b"mdat", b"free", b"wide", b"skip")
# How many packets probing may read looking for the first decodable frame.
_FIRST_FRAME_PACKETS = 256
_UNSPECIFIED = 2


def probe(source: MediaSource, *, limits: MediaLimits) -> VideoInfo:
    """Describe the first video stream of ``source``.

    Raises NotAVideo (not a media file), CorruptVideo (damaged or truncated),
    NoVideoStream, UnsupportedCodec (no decoder), EmptyVideo (no frame decodes),
    UnknownDuration, FrameTooLarge and VideoTooLong (over ``limits``).
    """
    with open_input(source) as container:
        stream = video_stream(container)
        check_frame_size(stream.codec_context.width, stream.codec_context.height, limits)
        first = _first_frame(container, stream)
        # Some containers only tell the size once a frame is decoded.
        check_frame_size(first.width, first.height, limits)
        duration = _duration_s(container, stream)
        if duration > limits.max_duration_s:
            raise VideoTooLong(
                f"The video is {duration:.1f} s long; the limit is {limits.max_duration_s:g} s."
            )
        return _video_info(container, stream, first, duration)


@contextmanager
def open_input(source: MediaSource, *, hwaccel: HWAccel | None = None) -> Iterator[InputContainer]:
    """Open ``source`` for demuxing (a ``RangedInput`` through a reader of its own, closed
    with the container). Raises NotAVideo or CorruptVideo when it will not open."""
    if isinstance(source, RangedInput):
        with source.open() as reader, open_input(reader, hwaccel=hwaccel) as container:
            yield container
        return
    try:
        container = av.open(
            str(source) if isinstance(source, Path) else source,
            mode="r",
            metadata_errors="ignore",
            hwaccel=hwaccel,
        )
    except av.error.FileNotFoundError as exc:
        raise NotAVideo(f"The input file {source} does not exist.") from exc
    except av.error.FFmpegError as exc:
        raise _open_error(source, exc) from exc
    try:
        yield container
    finally:
        container.close()


def video_stream(container: InputContainer) -> VideoStream:
    """The main video stream (cover art is skipped). Raises NoVideoStream, UnsupportedCodec."""
    streams = [
        s for s in container.streams.video if not s.disposition & av.stream.Disposition.attached_pic
    ]
    if not streams:
        raise NoVideoStream("The file has no video stream (is it an audio file?).")
    stream = streams[0]
    if stream.codec_context is None:
        raise UnsupportedCodec("The video codec of this file is not supported (no decoder).")
    return stream


def check_frame_size(width: int, height: int, limits: MediaLimits) -> None:
    """Raises FrameTooLarge when the frame is over the limits (in either orientation)."""
    fits = width <= limits.max_width and height <= limits.max_height
    fits_rotated = width <= limits.max_height and height <= limits.max_width
    if not (fits or fits_rotated):
        raise FrameTooLarge(
            f"The frame size {width}x{height} is over the limit of "
            f"{limits.max_width}x{limits.max_height}."
        )


def media_error(exc: av.error.FFmpegError, during: str) -> UpresError:
    """The upres error for a PyAV error raised while ``during`` (e.g. "decoding")."""
    cause = exc.__cause__ or exc.__context__
    if isinstance(cause, UpresError):
        return cause
    if isinstance(exc, av.error.DecoderNotFoundError):
        return UnsupportedCodec("The video codec of this file is not supported (no decoder).")
    return CorruptVideo(f"The video is damaged or truncated ({during} failed: {exc.strerror}).")


def _open_error(source: MediaSource, exc: av.error.FFmpegError) -> MediaError:
    cause = exc.__cause__ or exc.__context__
    if isinstance(cause, MediaError):
        return cause
    if _looks_like_mp4(source):
        return CorruptVideo(
            "The file is an MP4/MOV that cannot be read: it is truncated or damaged "
            "(its index, the 'moov' box, is missing or broken)."
        )
    return NotAVideo("The file is not a video that upres can read.")


def _looks_like_mp4(source: MediaSource) -> bool:
    if isinstance(source, RangedInput):
        with source.open() as reader:
            return _looks_like_mp4(reader)
    try:
        if isinstance(source, Path):
            with source.open("rb") as f:
                head = f.read(12)
        else:
            source.seek(0)
            head = source.read(12)
            source.seek(0)
    except OSError:
        return False
    return head[4:8] in _ISO_BOXES


def _first_frame(container: InputContainer, stream: VideoStream) -> VideoFrame:
    failures = 0
    try:
        for count, packet in enumerate(container.demux(stream)):
            if count >= _FIRST_FRAME_PACKETS:
                break
            try:
                frames = stream.decode(packet)
            except av.error.InvalidDataError:
                failures += 1
                continue
            if frames:
                return frames[0]
    except av.error.FFmpegError as exc:
        raise media_error(exc, "probing") from exc
    if failures:
        raise CorruptVideo("The video is damaged: none of its first frames decode.")
    raise EmptyVideo(NO_FRAME_MESSAGE)


def _duration_s(container: InputContainer, stream: VideoStream) -> float:
    """Stream duration, else container duration, else the end of the last packet."""
    if stream.duration and stream.time_base:
        return float(stream.duration * stream.time_base)
    if container.duration:
        return container.duration / av.time_base
    return packet_span_s(container, stream)


def packet_span_s(container: InputContainer, stream: VideoStream) -> float:
    """From the first packet's pts to the last packet's end, by demuxing (no decoding).

    Raises UnknownDuration when the packets carry no usable timestamps.
    """
    first: int | None = None
    end: int | None = None
    try:
        container.seek(0, stream=stream)
        for packet in container.demux(stream):
            if packet.pts is None:
                continue
            first = packet.pts if first is None else min(first, packet.pts)
            end = max(end or packet.pts, packet.pts + (packet.duration or 0))
    except av.error.FFmpegError as exc:
        raise media_error(exc, "reading") from exc
    if first is None or end is None or not stream.time_base or end <= first:
        raise UnknownDuration("The duration of the video cannot be determined.")
    return float((end - first) * stream.time_base)


def _video_info(
    container: InputContainer, stream: VideoStream, first: VideoFrame, duration: float
) -> VideoInfo:
    ctx = stream.codec_context
    pix_fmt = first.format.name
    sar = stream.sample_aspect_ratio or ctx.sample_aspect_ratio
    return VideoInfo(
        width=first.width,
        height=first.height,
        duration_s=duration,
        frame_count=stream.frames or None,
        average_fps=stream.average_rate or stream.guessed_rate or None,
        codec=ctx.codec.canonical_name,
        pix_fmt=pix_fmt,
        bit_depth=max((c.bits for c in first.format.components), default=8),
        rotation=int(first.rotation) % 360,
        sample_aspect_ratio=Fraction(sar) if sar else None,
        color=_color(first, stream),
        has_audio=bool(container.streams.audio),
        container=container.format.name,
        hdr=hdr_info(first, codec_tag=ctx.codec_tag),
    )


def _color(frame: VideoFrame, stream: VideoStream) -> ColorInfo:
    """The frame's tags (from the bitstream), falling back to the container's."""
    ctx = stream.codec_context

    def pick(from_frame: int, from_stream: int, unspecified: int = _UNSPECIFIED) -> int:
        return int(from_frame if from_frame != unspecified else from_stream)

    return ColorInfo(
        color_range=pick(frame.color_range, ctx.color_range, 0),
        primaries=pick(frame.color_primaries, ctx.color_primaries),
        transfer=pick(frame.color_trc, ctx.color_trc),
        matrix=pick(frame.colorspace, ctx.colorspace),
    )
