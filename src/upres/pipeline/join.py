"""Chunk parts -> one video: their packets remuxed in order, never re-encoded.

The video stream is the first part's (its parameter sets, which every part
must share), at the time base a whole-video encode uses; the source's audio,
subtitles, tags and chapters are added once by the same code as a whole-video
encode (``upres.pipeline.sidestreams``), interleaved by time.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from contextlib import ExitStack
from fractions import Fraction
from pathlib import Path

import av.error
from av.container import OutputContainer
from av.packet import Packet
from av.stream import Stream
from av.video.stream import VideoStream

from upres.domain.media import VideoCodec
from upres.errors import EncodeError
from upres.inputs.probe import media_error, open_input, probe, video_stream
from upres.pipeline.destination import check_destination
from upres.pipeline.encode import open_output, output_time_base
from upres.pipeline.engine import decide, move_into_place, temp_beside
from upres.pipeline.frames import FALLBACK_TIME_BASE
from upres.pipeline.metadata import copy_stream_metadata
from upres.pipeline.output_plan import OutputPlan
from upres.pipeline.sidestreams import Interleaver, add_side_streams, mux, packet_seconds
from upres.pipeline.video_run import VideoOptions, VideoResult

# FFmpeg's name of each output codec, as a part's stream reports it.
_CODEC_NAMES: dict[VideoCodec, str] = {"h264": "h264", "h265": "hevc", "av1": "av1"}


def join_chunks(
    *,
    source: Path,
    parts: Sequence[Path],
    destination: Path,
    options: VideoOptions,
) -> VideoResult:
    """Join the parts of ``source`` (``upscale_chunk``'s, in span order) into ``destination``.

    ``options`` are those the parts were made with.
    Raises InvalidRequest when ``destination`` cannot be written, the
    MediaErrors of ``probe``, CorruptVideo when a part cannot be read, and
    EncodeError when there is no part, when a part is not what the plan makes
    (size, codec, parameter sets) or writing fails; on any error no file
    exists under ``destination`` and no temporary file is left.
    """
    started = time.monotonic()
    container = check_destination(destination)
    if not parts:
        raise EncodeError("There is no chunk to join.")
    info = probe(source, limits=options.limits)
    with open_input(parts[0]) as first:
        factor = video_stream(first).width // max(info.width, 1)
    decision = decide(
        source, info, factor=factor, settings=options.encode, double_rate=options.double_rate
    )
    temp = temp_beside(destination)
    try:
        frames, dropped = _remux(source, parts, temp, container, decision.plan)
        move_into_place(temp, destination)
    finally:
        temp.unlink(missing_ok=True)
    return VideoResult(
        info=info,
        path=destination,
        frames=frames,
        width=decision.plan.width,
        height=decision.plan.height,
        codec=decision.plan.codec,
        fields=decision.fields,
        notes=decision.notes,
        output_bytes=destination.stat().st_size,
        elapsed_s=time.monotonic() - started,
        skipped_packets=0,
        concealed_frames=0,
        dropped_streams=dropped,
        hardware_decoded=False,
    )


def _remux(
    source: Path, parts: Sequence[Path], target: Path, container: str, plan: OutputPlan
) -> tuple[int, tuple[str, ...]]:
    with ExitStack() as stack:
        src = stack.enter_context(open_input(source))
        video_in = video_stream(src)
        out = stack.enter_context(open_output(target, container))
        template = stack.enter_context(open_input(parts[0]))
        # The muxer may change the stream's time base when it writes the header (Matroska:
        # milliseconds); packets are given in this one, and rebased as they are muxed.
        time_base = output_time_base(video_in, plan.rate)
        part = _checked(video_stream(template), plan, parts[0])
        video = _add_video(out, part, time_base=time_base, video_in=video_in, plan=plan)
        routes, dropped = add_side_streams(src, out, video_in)
        side = Interleaver(src, routes, out)
        extradata = video_stream(template).codec_context.extradata
        frames = 0
        last_dts: int | None = None
        for path in parts:
            for packet in _packets(path, plan, extradata, video, time_base):
                last_dts = _follow(packet, last_dts)
                side.mux_until(packet_seconds(packet))
                mux(out, packet)
                frames += 1
        side.finish()
    return frames, dropped


def _add_video(
    out: OutputContainer,
    part: VideoStream,
    *,
    time_base: Fraction,
    video_in: VideoStream,
    plan: OutputPlan,
) -> VideoStream:
    try:
        # Opaque: the codec parameters as they are, with no encoder looked up by the
        # name of the part's decoder (libdav1d has no encoder).
        stream = out.add_stream_from_template(part, opaque=True)
    except (av.error.FFmpegError, ValueError) as exc:
        raise EncodeError("Cannot copy the chunks' video stream.") from exc
    stream.time_base = time_base
    if plan.rotation:
        stream.set_display_rotation(plan.rotation)
    copy_stream_metadata(video_in, stream)
    return stream


def _checked(part: VideoStream, plan: OutputPlan, path: Path) -> VideoStream:
    """``part``, when its size and codec are the plan's. Raises EncodeError."""
    codec = part.codec_context.codec.canonical_name
    if (part.width, part.height, codec) != (plan.width, plan.height, _CODEC_NAMES[plan.codec]):
        raise EncodeError(
            f"The chunk {path.name} is {part.width}x{part.height} {codec}, not the "
            f"{plan.width}x{plan.height} {plan.codec} this join expects."
        )
    return part


def _packets(
    path: Path, plan: OutputPlan, extradata: bytes | None, video: VideoStream, target: Fraction
) -> Iterator[Packet[Stream]]:
    """The video packets of one part, in the ``target`` time base, bound to ``video``.

    Raises CorruptVideo when the part cannot be read, EncodeError when it was
    encoded with other parameter sets than the first part.
    """
    with open_input(path) as container:
        stream = _checked(video_stream(container), plan, path)
        if stream.codec_context.extradata != extradata:
            raise EncodeError(
                f"The chunk {path.name} was encoded with other settings than the first chunk."
            )
        base = Fraction(stream.time_base or FALLBACK_TIME_BASE)
        demuxed: Stream = stream
        try:
            for packet in container.demux(demuxed):
                if packet.size:
                    yield _rebased(packet, base, target, video)
        except av.error.FFmpegError as exc:
            raise media_error(exc, f"reading the chunk {path.name}") from exc


def _rebased(
    packet: Packet[Stream], base: Fraction, target: Fraction, video: VideoStream
) -> Packet[Stream]:
    """``packet`` with its times in ``target`` (exact: a part keeps the source's ticks)."""
    ratio = base / target
    if packet.pts is not None:
        packet.pts = round(packet.pts * ratio)
    if packet.dts is not None:
        packet.dts = round(packet.dts * ratio)
    packet.duration = round((packet.duration or 0) * ratio)
    packet.time_base = target
    packet.stream = video
    return packet


def _follow(packet: Packet[Stream], last_dts: int | None) -> int | None:
    """Keep decode times increasing across a seam (each part's encoder started its own).

    Raises EncodeError when that would decode a frame after its presentation.
    """
    if packet.dts is None or last_dts is None or packet.dts > last_dts:
        return packet.dts if packet.dts is not None else last_dts
    packet.dts = last_dts + 1
    if packet.pts is not None and packet.dts > packet.pts:
        raise EncodeError("The chunks' decode times overlap: they cannot be joined.")
    return packet.dts
