"""The source's other streams in the output mp4, interleaved in time with the new video.

Audio and mov_text subtitles that mp4 players handle are copied packet for
packet (bit-identical). Other audio (PCM, Vorbis, ...) is re-encoded to AAC so
the output still has sound. Everything else (data streams, extra video
streams, cover art, other subtitle formats) is dropped and reported.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import av
import av.error
from av.audio.frame import AudioFrame
from av.audio.stream import AudioStream
from av.container import InputContainer, OutputContainer
from av.packet import Packet
from av.stream import Stream
from av.video.stream import VideoStream

from upres.errors import EncodeError
from upres.worker.probe import media_error

# Codecs every mp4 player handles: copied as they are.
_COPYABLE = frozenset({"aac", "mp3", "ac3", "eac3", "opus", "flac", "alac", "mov_text"})
_EMPTY_CUE = b"\x00\x00"
# Channel count -> FFmpeg's standard layout; wider sources are downmixed to stereo.
_LAYOUTS = {1: "mono", 2: "stereo", 3: "3.0", 4: "quad", 5: "5.0", 6: "5.1", 7: "6.1", 8: "7.1"}


@dataclass(frozen=True, kw_only=True)
class Route:
    """Where packets of one source stream go: ``output`` as they are, or through ``aac``."""

    output: Stream
    aac: AudioStream | None = None


def add_side_streams(
    src: InputContainer, out: OutputContainer, video_in: VideoStream
) -> tuple[dict[int, Route], tuple[str, ...]]:
    """Output streams for the source's other streams (by source index), and what was dropped."""
    routes: dict[int, Route] = {}
    dropped: list[str] = []
    for stream in src.streams:
        if stream.index == video_in.index:
            continue
        name = stream.codec_context.name if stream.codec_context else "unknown"
        if stream.type in ("audio", "subtitle") and name in _COPYABLE:
            routes[stream.index] = Route(output=_copy_of(out, stream))
        elif stream.type == "audio" and stream.codec_context is not None:
            aac = _aac_for(out, stream)
            routes[stream.index] = Route(output=aac, aac=aac)
        else:
            dropped.append(f"#{stream.index} {stream.type} ({name})")
    return routes, tuple(dropped)


def _copy_of(out: OutputContainer, stream: Stream) -> Stream:
    try:
        return out.add_stream_from_template(stream)
    except (av.error.FFmpegError, ValueError) as exc:
        raise EncodeError(f"Cannot copy the {stream.type} stream #{stream.index}.") from exc


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
