"""The media corpus of HDR, high bit depth and interlaced inputs, made with PyAV.

``make_hdr_clip`` writes 10-bit PQ or HLG video (HEVC, AV1 or H.264) with the
HDR10 static metadata blocks; ``make_interlaced_clip`` weaves two fields of a
moving disc into each frame (top or bottom field first, flagged or not);
``make_telecined_clip`` applies 3:2 pulldown to 24p film. ``combing``
(``testkit.media``) measures what deinterlacing must remove.
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path
from typing import Literal

import av
import numpy as np
from testkit.media import BT2020, HLG, PQ, FieldOrder, h264_stream, weave, write_h264, write_ten_bit

from upres.domain.media import ContentLight, MasteringDisplay

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


_H264 = {"crf": "16", "preset": "ultrafast"}


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
    return write_ten_bit(
        path,
        [hdr_pixels(i, width, height) for i in range(frames)],
        codec=codec,
        primaries=primaries,
        transfer=transfer,
        options=_options(codec, metadata=metadata),
        fps=fps,
    )


def _options(codec: str, *, metadata: bool) -> dict[str, str]:
    if codec == "libx265":
        params = "log-level=error" + (f":{_X265_HDR10}" if metadata else "")
        return {"crf": "16", "preset": "ultrafast", "x265-params": params}
    if codec == "libsvtav1":
        options = {"crf": "30", "preset": "12"}
        return options | ({"svtav1-params": _SVT_HDR10} if metadata else {})
    return dict(_H264)


def disc_picture(t: float, width: int, height: int) -> np.ndarray:
    """RGB24 picture at time ``t`` (in fields): a bright disc bouncing across a gradient."""
    y, x = np.mgrid[0:height, 0:width].astype(np.float64)
    travel = max(width - 40, 1)
    cx = 20 + travel - abs((3 * t) % (2 * travel) - travel)
    disc = (x - cx) ** 2 + (y - height / 2) ** 2 < (height * 0.22) ** 2
    value = np.where(disc, 220.0, 40 + x * 0.8 + y * 0.5)
    return np.clip(np.stack([value, value * 0.8, 255 - value], axis=-1), 0, 255).astype(np.uint8)


def woven(index: int, order: FieldOrder, width: int, height: int) -> np.ndarray:
    """Frame ``index`` of interlaced video: its first field at time 2i, its second at 2i+1."""
    first, second = (
        disc_picture(2 * index, width, height),
        disc_picture(2 * index + 1, width, height),
    )
    return weave(first, second, order)


def make_interlaced_clip(
    path: Path,
    *,
    order: FieldOrder = "tff",
    container: str = "mp4",
    flagged: bool = True,
    width: int = 96,
    height: int = 64,
    frames: int = 16,
    fps: int = 25,
    gop: int | None = None,
) -> Path:
    """Interlaced H.264 (``flagged``: coded as fields in ``order``; else flagged progressive),
    with a keyframe every ``gop`` frames when given."""
    return write_h264(
        path,
        [woven(i, order, width, height) for i in range(frames)],
        fps=fps,
        order=order if flagged else None,
        options=_H264 if gop is None else {**_H264, "g": str(gop)},
        container=container,
    )


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
        stream = h264_stream(out, width=width, height=height, fps=30, order="tff", options=_H264)
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
