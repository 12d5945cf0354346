"""Is every stream of an input as long as its container declares? A cut file fails, never shrinks.

A demuxer stops quietly at the end of a truncated file: an mp4 whose index
sits at the front (``+faststart``) still opens after it was cut in half, and
decoding it would give half the video. Before any frame is decoded, the file
is demuxed once without decoding (I/O only) and the end of each audio and
video stream's last packet is compared with what the container declares:

- per stream (mp4/mov: each track's duration from its index; MPEG-TS: an
  estimate from the packets that are there, so a cut TS looks complete);
- for the whole file when no stream declares its own (Matroska/WebM write the
  file's duration in the header).

A shortfall over ``_TOLERANCE_S`` is TruncatedVideo. Damage inside a complete
file (packets that do not decode) is the decoder's business, not this check's.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import av
import av.error
from av.container import InputContainer
from av.packet import Packet
from av.stream import Stream

from upres.errors import TruncatedVideo
from upres.inputs.probe import InputSource, media_error, open_input, video_stream

# Containers round durations (Matroska to milliseconds, the last audio frame's
# padding, a missing last packet duration): a real cut is far longer than this.
_TOLERANCE_S = 0.25
_CHECKED_TYPES = ("video", "audio")


@dataclass
class _Read:
    """What demuxing found in one stream: packets and the end of the last one (seconds)."""

    packets: int = 0
    end_s: float = 0.0
    gap: int = field(default=0, repr=False)
    last_pts: int | None = field(default=None, repr=False)


def check_complete(source: InputSource) -> None:
    """Demux ``source`` once and compare every audio and video stream with its declared length.

    Raises TruncatedVideo when one ends more than a quarter of a second early,
    or CorruptVideo when demuxing fails; reads the file and changes nothing.
    """
    with open_input(source) as container:
        video = video_stream(container)
        read = _read_all(container)
        checked = [s for s in container.streams if s.type in _CHECKED_TYPES]
        declared = {s.index: end for s in checked if (end := _declared_end_s(s)) is not None}
        for index, end in declared.items():
            # A stream cut before its first packet was read ends at 0.
            found = read.get(index, _Read())
            _compare(end, found.end_s, _what(container.streams[index], found, video.index))
        if not declared and container.duration:
            file_end = ((container.start_time or 0) + container.duration) / av.time_base
            _compare(file_end, max((r.end_s for r in read.values()), default=0.0), "the file")


def _read_all(container: InputContainer) -> dict[int, _Read]:
    read: dict[int, _Read] = {}
    try:
        for packet in container.demux():
            if packet.pts is None or not packet.time_base:
                continue
            _note(read.setdefault(packet.stream.index, _Read()), packet)
    except av.error.FFmpegError as exc:
        raise media_error(exc, "reading") from exc
    return read


def _note(read: _Read, packet: Packet[Stream]) -> None:
    """Count ``packet``; a packet without a duration lasts as long as the gap before it."""
    pts = int(packet.pts or 0)
    if read.last_pts is not None and pts > read.last_pts:
        read.gap = pts - read.last_pts
    read.last_pts = pts
    read.packets += 1
    end = float((pts + (packet.duration or read.gap)) * packet.time_base)
    read.end_s = max(read.end_s, end)


def _declared_end_s(stream: Stream) -> float | None:
    if not stream.duration or not stream.time_base:
        return None
    return float(((stream.start_time or 0) + stream.duration) * stream.time_base)


def _what(stream: Stream, read: _Read, video_index: int) -> str:
    """``its video stream #0 (12 of its 24 frames)``, for the message."""
    what = f"its {stream.type} stream #{stream.index}"
    if stream.index == video_index and stream.frames:
        what += f" ({read.packets} of its {stream.frames} frames)"
    return what


def _compare(declared_s: float, read_s: float, what: str) -> None:
    if declared_s - read_s > _TOLERANCE_S:
        raise TruncatedVideo(
            f"The video is truncated: {what} ends at {read_s:.2f} s but the container "
            f"declares {declared_s:.2f} s."
        )
