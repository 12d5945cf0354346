"""Synthetic video written with PyAV, and how combed a picture is.

The tests' media corpus (``tests/clips_media.py``) and the media bench
(``bench/media.py``) draw different pictures; they code them the same way:
10-bit BT.2020 through ``write_ten_bit``, interlaced H.264 through
``write_h264`` with fields woven by ``weave``, a tone with ``write_tone``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Literal

import av
import numpy as np

# AVCOL_* values: BT.2020 primaries and non-constant-luminance matrix, PQ and HLG
# transfers, limited (TV) range.
BT2020 = 9
PQ = 16
HLG = 18
LIMITED = 1
TEN_BIT = "yuv420p10le"

FieldOrder = Literal["tff", "bff"]


def write_ten_bit(
    path: Path,
    pictures: Sequence[np.ndarray],
    *,
    codec: str,
    primaries: int,
    transfer: int,
    options: Mapping[str, str],
    fps: int = 12,
    container: str | None = None,
) -> Path:
    """``pictures`` (H, W, 3 uint16 RGB) as 10-bit 4:2:0 limited-range video tagged
    with ``primaries`` (also the matrix) and ``transfer``."""
    height, width = pictures[0].shape[:2]
    with av.open(str(path), mode="w", format=container) as out:
        stream = out.add_stream(codec, rate=fps)
        assert isinstance(stream, av.VideoStream)
        stream.width, stream.height, stream.pix_fmt = width, height, TEN_BIT
        ctx = stream.codec_context
        ctx.color_primaries, ctx.color_trc = primaries, transfer
        ctx.colorspace, ctx.color_range = primaries, LIMITED
        stream.options = dict(options)
        for i, picture in enumerate(pictures):
            frame = av.VideoFrame.from_ndarray(picture, format="rgb48le").reformat(
                format=TEN_BIT,
                src_colorspace=primaries,
                dst_colorspace=primaries,
                dst_color_range=LIMITED,
            )
            frame.pts = i
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
    return path


def weave(first: np.ndarray, second: np.ndarray, order: FieldOrder) -> np.ndarray:
    """One interlaced frame: the field shown first from ``first``, the other from
    ``second`` (top field first: the even rows are ``first``'s)."""
    frame = first.copy()
    later_rows = slice(1, None, 2) if order == "tff" else slice(0, None, 2)
    frame[later_rows] = second[later_rows]
    return frame


def h264_stream(
    out: av.container.OutputContainer,
    *,
    width: int,
    height: int,
    fps: int,
    order: FieldOrder | None,
    options: Mapping[str, str],
) -> av.video.stream.VideoStream:
    """An H.264 yuv420p stream; coded as fields in ``order`` unless it is None."""
    stream = out.add_stream("libx264", rate=fps)
    assert isinstance(stream, av.VideoStream)
    stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
    stream.options = dict(options)
    if order is not None:
        stream.options |= {"flags": "+ilme+ildct", "x264-params": f"{order}=1"}
    return stream


def write_h264(
    path: Path,
    pictures: Sequence[np.ndarray],
    *,
    fps: int,
    order: FieldOrder | None,
    options: Mapping[str, str],
    container: str | None = None,
) -> Path:
    """``pictures`` (H, W, 3 uint8 RGB) as H.264, interlaced in ``order`` unless None."""
    height, width = pictures[0].shape[:2]
    with av.open(str(path), mode="w", format=container) as out:
        stream = h264_stream(out, width=width, height=height, fps=fps, order=order, options=options)
        for i, picture in enumerate(pictures):
            frame = av.VideoFrame.from_ndarray(picture, format="rgb24").reformat(format="yuv420p")
            frame.pts = i
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
    return path


def write_tone(
    out: av.container.OutputContainer,
    stream: av.audio.stream.AudioStream,
    seconds: float,
    *,
    amplitude: float,
) -> None:
    """A 440 Hz tone ``seconds`` long on every channel of ``stream``, so the muxer
    interleaves a real audio track with the video."""
    rate, step = stream.rate, stream.codec_context.frame_size or 1024
    channels, layout = stream.layout.nb_channels, stream.layout.name
    total = math.ceil(seconds * rate)
    for start in range(0, total, step):
        t = np.arange(start, min(start + step, total)) / rate
        tone = (amplitude * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
        frame = av.AudioFrame.from_ndarray(
            np.tile(tone, (channels, 1)), format="fltp", layout=layout
        )
        frame.sample_rate, frame.pts = rate, start
        out.mux(stream.encode(frame))
    out.mux(stream.encode(None))


def combing(luma: np.ndarray) -> float:
    """How combed a picture is: the mean zigzag of each line against both neighbours.

    A line brighter (or darker) than the lines above and below it scores the
    geometric mean of the two steps; edges and gradients, which step one way,
    score nothing. Woven fields of a moving scene score high, progressive
    pictures near zero.
    """
    y = luma.astype(np.float64)
    zigzag = (y[1:-1] - y[:-2]) * (y[1:-1] - y[2:])
    return float(np.sqrt(np.clip(zigzag, 0, None)).mean())
