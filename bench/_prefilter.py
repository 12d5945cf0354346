"""Pre-filters on a network's input for the video quality bench: ``method+name``.

A pre-filter runs on the decoded frames before the stage (only the network's
input; its output is untouched), frame by frame, through an FFmpeg filter
chain in PyAV's own build (LGPL: ``deblock``, ``dctdnoiz``, ``gblur``; the
GPL post-processing filters ``pp``/``spp`` are not in it). Each chain runs in
one pixel format: ``gbrp`` is the decoded RGB as planes, no colour conversion;
``yuv444p`` is BT.601 Y'CbCr at full resolution, so a chain can work on the
planes H.264 coded (``planes=1`` luma only, ``6`` chroma only).

Conversions use upres's own swscale flags (``TO_YUV_FLAGS``, ``TO_RGB_FLAGS``).
FFmpeg's ``deblock`` (H.264-style, ``block=8`` aligned to the frame's origin
as the encoder's blocks are): across each block edge it smooths a step below
``alpha`` whose neighbours within the block vary less than ``beta`` (weak: the
two pixels next to the edge; strong: three each side, more when flat) and,
``gamma``/``delta``, the next ones out. The thresholds are fractions of the
plane's range (default alpha 0.098, beta/gamma/delta 0.05).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from fractions import Fraction

import av
import numpy as np
import torch

from upres.pipeline.colorimetry import TO_RGB_FLAGS, TO_YUV_FLAGS
from upres.pipeline.frames import FrameUpscaler

SEPARATOR = "+"


@dataclass(frozen=True, kw_only=True)
class Prefilter:
    """An FFmpeg filter chain (``name=args,name=args``) run in ``pixel_format``."""

    pixel_format: str
    chain: str


PREFILTERS: dict[str, Prefilter] = {
    "deblock": Prefilter(pixel_format="gbrp", chain="deblock=filter=strong:block=8"),
    "deblock-weak": Prefilter(pixel_format="gbrp", chain="deblock=filter=weak:block=8"),
    "deblock-yuv": Prefilter(pixel_format="yuv444p", chain="deblock=filter=strong:block=8"),
    # Chroma only, thresholds raised (alpha 0.3 = 77 levels) so most chroma block edges qualify.
    "deblock-chroma": Prefilter(
        pixel_format="yuv444p",
        chain="deblock=filter=strong:block=8:alpha=0.3:beta=0.2:gamma=0.2:delta=0.2:planes=6",
    ),
    "chroma-blur": Prefilter(pixel_format="yuv444p", chain="gblur=sigma=1.5:planes=6"),
    # Chroma to 4:2:0 (bilinear) and back, interpolated: what upres's decoder gives a 4:2:0 source.
    "chroma-420": Prefilter(pixel_format="yuv420p", chain="null"),
}


def split(method: str) -> tuple[str, Prefilter | None]:
    """``basicvsr-vimeo90k-bi+deblock`` -> the stage's method and its pre-filter."""
    base, _, name = method.partition(SEPARATOR)
    if not name:
        return base, None
    if name not in PREFILTERS:
        raise SystemExit(f"unknown pre-filter {name!r}: one of {', '.join(PREFILTERS)}")
    return base, PREFILTERS[name]


def apply(frames: np.ndarray, prefilter: Prefilter) -> np.ndarray:
    """(T, h, w, 3) uint8 RGB through ``prefilter``, each frame on its own."""
    height, width = frames.shape[1:3]
    graph = av.filter.Graph()
    nodes = [
        graph.add_buffer(
            width=width,
            height=height,
            format=av.VideoFormat(prefilter.pixel_format),
            time_base=Fraction(1, 24),
        )
    ]
    for link in prefilter.chain.split(","):
        name, _, args = link.partition("=")
        nodes.append(graph.add(name, args or None))
    nodes.append(graph.add("buffersink"))
    for before, after in itertools.pairwise(nodes):
        before.link_to(after)
    graph.configure()
    out = []
    for index, pixels in enumerate(frames):
        frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(pixels), format="rgb24")
        frame = frame.reformat(format=prefilter.pixel_format, interpolation=TO_YUV_FLAGS)
        frame.pts, frame.time_base = index, Fraction(1, 24)
        graph.vpush(frame)
        back = graph.vpull().reformat(format="rgb24", interpolation=TO_RGB_FLAGS)
        out.append(back.to_ndarray())
    return np.stack(out)


@dataclass(frozen=True, kw_only=True)
class Prefiltered:
    """``stage`` fed its frames through ``prefilter`` first, batch by batch."""

    stage: FrameUpscaler
    prefilter: Prefilter

    @property
    def factor(self) -> int:
        return self.stage.factor

    @property
    def batch_size(self) -> int:
        return self.stage.batch_size

    def upscale(self, pixels: torch.Tensor) -> torch.Tensor:
        return self.stage.upscale(torch.from_numpy(apply(pixels.numpy(), self.prefilter)))
