"""The source's other streams in the output, interleaved in time with the new video.

mp4/mov: audio and mov_text subtitles that mp4 players handle are copied
packet for packet (bit-identical); subrip subtitles become mov_text (the same
text, cue for cue). Matroska: every audio and subtitle stream its muxer
takes is copied, mov_text becomes subrip, and attachments (fonts) are kept.
Other audio (PCM, Vorbis, ... in mp4) is re-encoded to AAC so the output
still has sound. Every kept stream keeps its tags and disposition
(``upres.pipeline.metadata``). The rest (data streams, extra video streams,
cover art, ASS in mp4) is dropped and reported by name; an mp4's chapter
track is not a stream to keep but the chapters, which are kept as such.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import av
import av.error
from av.audio.frame import AudioFrame
from av.audio.stream import AudioStream
from av.container import InputContainer, OutputContainer
from av.packet import Packet
from av.stream import AttachmentStream, Stream
from av.video.stream import VideoStream

from upres.errors import EncodeError
from upres.inputs.probe import media_error
from upres.pipeline.metadata import (
    copy_container_metadata,
    copy_stream_metadata,
    is_chapter_track,
    kept_tags,
)

# Codecs every mp4 player handles: copied as they are.
_MP4_COPYABLE = frozenset({"aac", "mp3", "ac3", "eac3", "opus", "flac", "alac", "mov_text"})
_ISO_MUXERS = frozenset({"mp4", "mov"})
# Text subtitles rewritten cue for cue into the one each container family takes.
_MOV_TEXT, _SUBRIP = "mov_text", "subrip"
_LENGTH_PREFIX = 2
_OCTETS = "application/octet-stream"
_EMPTY_CUE = b"\x00\x00"
# Channel count -> FFmpeg's standard layout; wider sources are downmixed to stereo.
_LAYOUTS = {1: "mono", 2: "stereo", 3: "3.0", 4: "quad", 5: "5.0", 6: "5.1", 7: "6.1", 8: "7.1"}


@dataclass(frozen=True, kw_only=True)
class Route:
    """Where packets of one source stream go: ``output`` as they are, rewritten by
    ``text`` (a subtitle format change), or through ``aac``."""

    output: Stream
    aac: AudioStream | None = None
    text: Callable[[bytes], bytes] | None = None


# Why slow motion leaves out the audio and subtitles.
UNTIMED_REASON = "slow motion stretches the video, so it no longer matches"


def add_side_streams(
    src: InputContainer, out: OutputContainer, video_in: VideoStream, *, stretch: int = 1
) -> tuple[dict[int, Route], tuple[str, ...]]:
    """Output streams for the source's other streams (by source index), and what was dropped.

    Also gives ``out`` the source's container tags and chapters. With a
    ``stretch`` (slow motion: the video no longer runs on the source's
    clock) audio and subtitles are dropped and chapters stretched as much.
    """
    copy_container_metadata(src, out, stretch=stretch)
    timed = stretch == 1
    routes: dict[int, Route] = {}
    dropped: list[str] = []
    for stream in src.streams:
        if stream.index == video_in.index or is_chapter_track(stream):
            continue
        if isinstance(stream, AttachmentStream) and out.format.name not in _ISO_MUXERS:
            _attach(out, stream)
            continue
        if not timed and stream.type in ("audio", "subtitle"):
            dropped.append(f"{describe(stream)}: {UNTIMED_REASON}")
            continue
        route = _route_for(stream, out)
        if route is None:
            dropped.append(f"{describe(stream)}: {_why_not(stream, out)}")
            continue
        copy_stream_metadata(stream, route.output)
        routes[stream.index] = route
    return routes, tuple(dropped)


def _route_for(stream: Stream, out: OutputContainer) -> Route | None:
    name = _codec_name(stream)
    iso = out.format.name in _ISO_MUXERS
    if stream.type not in ("audio", "subtitle"):
        return None
    if name in (_MP4_COPYABLE if iso else out.supported_codecs):
        return Route(output=_copy_of(out, stream))
    if stream.type == "subtitle":
        if iso and name == _SUBRIP:
            return Route(output=_text_stream(out, _MOV_TEXT), text=_to_mov_text)
        if not iso and name == _MOV_TEXT:
            return Route(output=_text_stream(out, _SUBRIP), text=_from_mov_text)
        return None
    if stream.codec_context is None:
        return None
    aac = _aac_for(out, stream)
    return Route(output=aac, aac=aac)


def _why_not(stream: Stream, out: OutputContainer) -> str:
    if stream.type == "video":
        return "the output holds one video stream, the upscaled one"
    return f"{out.format.name} cannot carry it"


def _codec_name(stream: Stream) -> str:
    """The codec's own name (``subrip``, ``ass``), not its decoder's (``srt``, ``ssa``)."""
    context = stream.codec_context
    return context.codec.canonical_name if context is not None else "unknown"


def describe(stream: Stream) -> str:
    """``subtitle stream #3 (ass, deu, "Deutsch")``: which stream, for a person."""
    facts = [_codec_name(stream)]
    tags = kept_tags(stream.metadata)
    if isinstance(stream, AttachmentStream):
        facts = [stream.name or "unnamed", stream.mimetype or "no type"]
    facts += [
        tags[k] if k == "language" else f'"{tags[k]}"' for k in ("language", "title") if k in tags
    ]
    return f"{stream.type} stream #{stream.index} ({', '.join(facts)})"


def _attach(out: OutputContainer, stream: AttachmentStream) -> None:
    name = stream.name or f"attachment-{stream.index}"
    try:
        out.add_attachment(name, stream.mimetype or _OCTETS, stream.data)
    except (av.error.FFmpegError, ValueError) as exc:
        raise EncodeError(f"Cannot copy the attachment {name}.") from exc


def _copy_of(out: OutputContainer, stream: Stream) -> Stream:
    try:
        return out.add_stream_from_template(stream)
    except (av.error.FFmpegError, ValueError) as exc:
        raise EncodeError(f"Cannot copy the {stream.type} stream #{stream.index}.") from exc


def _text_stream(out: OutputContainer, codec: str) -> Stream:
    try:
        return out.add_mux_stream(codec)
    except (av.error.FFmpegError, ValueError) as exc:
        raise EncodeError(f"Cannot add a {codec} subtitle stream.") from exc


def _to_mov_text(text: bytes) -> bytes:
    """A subrip cue as a mov_text sample: the text after its 16-bit length."""
    return struct.pack(">H", len(text)) + text


def _from_mov_text(sample: bytes) -> bytes:
    """A mov_text sample's text (its style boxes after the text are left behind)."""
    (length,) = struct.unpack_from(">H", sample)
    return sample[_LENGTH_PREFIX : _LENGTH_PREFIX + length]


def _aac_for(out: OutputContainer, stream: Stream) -> AudioStream:
    rate = getattr(stream.codec_context, "sample_rate", None) or 48_000
    source_layout = getattr(stream.codec_context, "layout", None)
    channels = source_layout.nb_channels if source_layout else 2
    try:
        # The standard layout for the channel count: AAC refuses unordered ones.
        return out.add_stream("aac", rate=rate, layout=_LAYOUTS.get(channels, "stereo"))
    except (av.error.FFmpegError, ValueError) as exc:
        raise EncodeError(f"Cannot re-encode audio stream #{stream.index} to AAC.") from exc


class Interleaver:
    """Feeds side-stream packets into ``out`` up to a given time, so streams interleave."""

    def __init__(self, src: InputContainer, routes: dict[int, Route], out: OutputContainer) -> None:
        streams = [s for s in src.streams if s.index in routes]
        self._packets: Iterator[Packet[Stream]] = iter(src.demux(*streams) if streams else ())
        self._routes = routes
        self._out = out
        self._held: Packet[Stream] | None = None

    def mux_until(self, seconds: float | None) -> None:
        """Mux every side packet that starts before ``seconds`` (all of them for None)."""
        while True:
            packet = self._held or self._next()
            self._held = None
            if packet is None:
                return
            if (packet.dts is None and not packet.size) or _is_subtitle_gap(packet):
                continue
            if seconds is not None and packet_seconds(packet) > seconds:
                self._held = packet
                return
            self._route(packet)

    def finish(self) -> None:
        """Mux what is left and flush the AAC encoders."""
        self.mux_until(None)
        for route in self._routes.values():
            if route.aac is not None:
                self._encode(route.aac, None)

    def _next(self) -> Packet[Stream] | None:
        try:
            return next(self._packets, None)
        except av.error.FFmpegError as exc:
            raise media_error(exc, "reading the audio") from exc

    def _route(self, packet: Packet[Stream]) -> None:
        route = self._routes[packet.stream.index]
        if route.text is not None:
            packet = _rewritten(packet, route.text)
        if route.aac is None:
            packet.stream = route.output
            mux(self._out, packet)
            return
        try:
            frames = packet.decode()
        except av.error.InvalidDataError:
            return  # a damaged audio packet: a short gap, as a player would play it
        except av.error.FFmpegError as exc:
            raise media_error(exc, "decoding the audio") from exc
        for frame in frames:
            if isinstance(frame, AudioFrame):
                self._encode(route.aac, frame)

    def _encode(self, stream: AudioStream, frame: AudioFrame | None) -> None:
        try:
            packets = stream.encode(frame)
        except av.error.FFmpegError as exc:
            raise EncodeError(f"The AAC encoder failed: {exc.strerror}") from exc
        for packet in packets:
            mux(self._out, packet)


def _rewritten(packet: Packet[Stream], text: Callable[[bytes], bytes]) -> Packet[Stream]:
    """``packet`` with its payload rewritten by ``text``, at the same times."""
    new = Packet(text(bytes(packet)))
    new.pts, new.dts, new.duration = packet.pts, packet.dts, packet.duration
    new.time_base = packet.time_base
    return new


def _is_subtitle_gap(packet: Packet[Stream]) -> bool:
    """An empty mov_text cue: the mp4 demuxer's stand-in for a gap, which the muxer re-creates."""
    if packet.stream.type != "subtitle" or packet.size != len(_EMPTY_CUE):
        return False
    return bytes(packet) == _EMPTY_CUE


def packet_seconds(packet: Packet[Stream]) -> float:
    """When ``packet`` is decoded, in seconds (0 when it carries no time)."""
    stamp = packet.dts if packet.dts is not None else packet.pts
    return float((stamp or 0) * (packet.time_base or 0))


def mux(out: OutputContainer, packet: Packet[Stream]) -> None:
    """Write one packet (the muxer interleaves). Raises EncodeError."""
    try:
        out.mux_one(packet)
    except av.error.FFmpegError as exc:
        raise EncodeError(f"Cannot write the output video: {exc.strerror}") from exc
