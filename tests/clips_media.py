"""The media corpus of HDR, high bit depth and interlaced inputs, made with PyAV.

``make_hdr_clip`` writes 10-bit PQ or HLG video (HEVC, AV1 or H.264) with the
HDR10 static metadata blocks; ``make_interlaced_clip`` weaves two fields of a
moving disc into each frame (top or bottom field first, flagged or not);
``make_telecined_clip`` applies 3:2 pulldown to 24p film. ``combing``
measures what deinterlacing must remove.
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path
from typing import Literal

import av
import numpy as np

from upres.domain.media import ContentLight, MasteringDisplay

# AVCOL_* values: BT.2020 primaries and non-constant-luminance matrix, PQ and HLG transfers.
BT2020 = 9
PQ = 16
HLG = 18
LIMITED = 1
# A common HDR10 grade: P3 primaries, D65, 1000 nits peak, 0.0001 nits black.
MASTERING = MasteringDisplay(
    red=(Fraction(34000, 50000), Fraction(16000, 50000)),
    green=(Fraction(13250, 50000), Fraction(34500, 50000)),
    blue=(Fraction(7500, 50000), Fraction(3000, 50000)),
    white_point=(Fraction(15635, 50000), Fraction(16450, 50000)),
    min_luminance=Fraction(1, 10000),
    max_luminance=Fraction(1000),
)
LIGHT = ContentLight(max_cll=1000, max_fall=400)
_X265_HDR10 = (
    "master-display=G(13250,34500)B(7500,3000)R(34000,16000)WP(15635,16450)L(10000000,1)"
    ":max-cll=1000,400:hdr10=1:repeat-headers=1"
)
_SVT_HDR10 = (
    "enable-hdr=1:mastering-display=G(0.265,0.69)B(0.15,0.06)R(0.68,0.32)WP(0.3127,0.329)"
    "L(1000.0,0.0001):content-light=1000,400"
)
TEN_BIT = "yuv420p10le"


def hdr_pixels(index: int, width: int, height: int) -> np.ndarray:
    """A (H, W, 3) uint16 picture using all 10 bits: fine moving gradients plus noise."""
    rng = np.random.default_rng(index)
    y, x = np.mgrid[0:height, 0:width].astype(np.float64)
    r = (x / max(width - 1, 1) * 0.9 + index * 0.01) % 1.0
    g = (y / max(height - 1, 1) * 0.8 + 0.1) % 1.0
    b = ((x + y) / (width + height) + index * 0.02) % 1.0
    img = np.stack([r, g, b], axis=-1) * 65535
    img += rng.normal(0, 600, size=img.shape)
    return np.clip(img, 0, 65535).astype(np.uint16)


def make_hdr_clip(
    path: Path,
    *,
    codec: Literal["libx265", "libsvtav1", "libx264"] = "libx265",
    transfer: int = PQ,
    metadata: bool = True,
    width: int = 64,
    height: int = 48,
    frames: int = 6,
    fps: int = 12,
) -> Path:
    """A 10-bit BT.2020 clip with ``transfer`` (PQ, HLG, or 1 for BT.709 tags).

    With ``metadata`` (x265 and SVT-AV1 only) every keyframe carries the
    ``MASTERING`` and ``LIGHT`` blocks.
    """
    primaries = BT2020 if transfer in (PQ, HLG) else 1
    with av.open(str(path), mode="w") as out:
        stream = out.add_stream(codec, rate=fps)
        stream.width, stream.height, stream.pix_fmt = width, height, TEN_BIT
        ctx = stream.codec_context
        ctx.color_primaries, ctx.color_trc = primaries, transfer
        ctx.colorspace, ctx.color_range = primaries, LIMITED
        stream.options = _options(codec, metadata=metadata)
        for i in range(frames):
            frame = av.VideoFrame.from_ndarray(hdr_pixels(i, width, height), format="rgb48le")
            frame = frame.reformat(
                format=TEN_BIT,
                src_colorspace=primaries,
                dst_colorspace=primaries,
                dst_color_range=LIMITED,
            )
            frame.pts = i
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
    return path


def _options(codec: str, *, metadata: bool) -> dict[str, str]:
    if codec == "libx265":
        params = "log-level=error" + (f":{_X265_HDR10}" if metadata else "")
        return {"crf": "16", "preset": "ultrafast", "x265-params": params}
    if codec == "libsvtav1":
        options = {"crf": "30", "preset": "12"}
        return options | ({"svtav1-params": _SVT_HDR10} if metadata else {})
    return {"crf": "16", "preset": "ultrafast"}


def disc_picture(t: float, width: int, height: int) -> np.ndarray:
    """RGB24 picture at time ``t`` (in fields): a bright disc bouncing across a gradient."""
    y, x = np.mgrid[0:height, 0:width].astype(np.float64)
    travel = max(width - 40, 1)
    cx = 20 + travel - abs((3 * t) % (2 * travel) - travel)
    disc = (x - cx) ** 2 + (y - height / 2) ** 2 < (height * 0.22) ** 2
    value = np.where(disc, 220.0, 40 + x * 0.8 + y * 0.5)
    return np.clip(np.stack([value, value * 0.8, 255 - value], axis=-1), 0, 255).astype(np.uint8)


def woven(index: int, order: Literal["tff", "bff"], width: int, height: int) -> np.ndarray:
    """Frame ``index`` of interlaced video: its first field at time 2i, its second at 2i+1."""
    first, second = (
        disc_picture(2 * index, width, height),
        disc_picture(2 * index + 1, width, height),
    )
    frame = first.copy()
    later_rows = slice(1, None, 2) if order == "tff" else slice(0, None, 2)
    frame[later_rows] = second[later_rows]
    return frame


def make_interlaced_clip(
    path: Path,
    *,
    order: Literal["tff", "bff"] = "tff",
    container: str = "mp4",
    flagged: bool = True,
    width: int = 96,
    height: int = 64,
    frames: int = 16,
    fps: int = 25,
) -> Path:
    """Interlaced H.264 (``flagged``: coded as fields in ``order``; else flagged progressive)."""
    with av.open(str(path), mode="w", format=container) as out:
        stream = _add_h264(out, width, height, fps, order if flagged else None)
        for i in range(frames):
            frame = av.VideoFrame.from_ndarray(woven(i, order, width, height), format="rgb24")
            frame = frame.reformat(format="yuv420p")
            frame.pts = i
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
    return path


def _add_h264(
    out: av.container.OutputContainer,
    width: int,
    height: int,
    fps: int,
    order: Literal["tff", "bff"] | None,
) -> av.video.stream.VideoStream:
    stream = out.add_stream("libx264", rate=fps)
    stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
    stream.options = {"crf": "16", "preset": "ultrafast"}
    if order is not None:
        stream.options |= {"flags": "+ilme+ildct", "x264-params": f"{order}=1"}
    return stream


def make_telecined_clip(
    path: Path, *, width: int = 96, height: int = 64, film_frames: int = 24
) -> Path:
    """24p film through 3:2 pulldown (FFmpeg's telecine filter): 30 interlaced frames a second."""
    graph = av.filter.Graph()
    source = graph.add(
        "buffer",
        f"video_size={width}x{height}:pix_fmt=yuv420p:time_base=1/24:pixel_aspect=1/1"
        ":frame_rate=24/1",
    )
    telecine = graph.add("telecine", "first_field=top:pattern=23")
    sink = graph.add("buffersink")
    source.link_to(telecine)
    telecine.link_to(sink)
    graph.configure()
    with av.open(str(path), mode="w") as out:
        stream = _add_h264(out, width, height, 30, "tff")
        written = 0
        for i in [*range(film_frames), None]:
            if i is None:
                graph.push(None)
            else:
                film = av.VideoFrame.from_ndarray(
                    disc_picture(2 * i, width, height), format="rgb24"
                )
                film = film.reformat(format="yuv420p")
                film.pts, film.time_base = i, Fraction(1, 24)
                graph.push(film)
            for picture in _drain(graph):
                frame = av.VideoFrame.from_ndarray(picture, format="rgb24")
                frame = frame.reformat(format="yuv420p")
                frame.pts = written
                written += 1
                out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
    return path


def _drain(graph: av.filter.Graph) -> list[np.ndarray]:
    pictures = []
    while True:
        try:
            frame = graph.pull()
        except (av.error.BlockingIOError, av.error.EOFError):
            return pictures
        pictures.append(frame.to_ndarray(format="rgb24"))


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
