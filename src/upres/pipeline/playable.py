"""A small H.264 copy of a result in a codec browsers cannot play (HEVC), for the page.

The real result is untouched; this copy is only for watching: at most
``MAX_WIDTH`` wide, video only, quick to encode.
"""

from __future__ import annotations

from pathlib import Path

import av

from upres.errors import EncodeError

MAX_WIDTH = 960
CRF = "26"
PRESET = "veryfast"


def playable_copy(source: Path, destination: Path, *, max_width: int = MAX_WIDTH) -> None:
    """Write ``source``'s video as H.264 yuv420p mp4, at most ``max_width`` wide.

    Raises EncodeError when it cannot be read or written (nothing is left at
    ``destination`` then).
    """
    try:
        _transcode(source, destination, max_width)
    except av.error.FFmpegError as exc:
        destination.unlink(missing_ok=True)
        raise EncodeError(f"Cannot make a playable copy of {source.name}: {exc}") from exc


def _transcode(source: Path, destination: Path, max_width: int) -> None:
    with av.open(str(source)) as inp, av.open(str(destination), "w", format="mp4") as out:
        video = inp.streams.video[0]
        width, height = _size(video.codec_context.width, video.codec_context.height, max_width)
        stream = out.add_stream("libx264", rate=video.average_rate or 30)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.time_base = video.time_base
        stream.options = {"crf": CRF, "preset": PRESET, "movflags": "+faststart"}
        for frame in inp.decode(video):
            small = frame.reformat(width=width, height=height, format="yuv420p")
            small.pts, small.time_base = frame.pts, frame.time_base
            out.mux(stream.encode(small))
        out.mux(stream.encode(None))


def _size(width: int, height: int, max_width: int) -> tuple[int, int]:
    """The copy's size: the source's aspect, at most ``max_width`` wide, even sides."""
    if width > max_width:
        height = round(height * max_width / width)
        width = max_width
    return width - width % 2 or 2, height - height % 2 or 2
