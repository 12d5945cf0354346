"""A running task's preview: a small JPEG of its latest upscaled frame, every few seconds.

The upscaling thread offers every batch's last frame; at most one per
``every_s`` is shrunk to a thumbnail there (cheap next to the model). The
heartbeat thread takes the newest thumbnail and encodes it, so no stage ever
waits on storage.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from fractions import Fraction

import av
import torch
import torch.nn.functional as F  # noqa: N812

PREVIEW_EVERY_S = 3.0
PREVIEW_WIDTH = 480
JPEG_QSCALE = 4  # MJPEG quantiser, 2 (best) .. 31: a sharp preview in a few kB
_UINT16_TO_8 = 257.0  # 65535 / 255


class FramePreview:
    """The newest thumbnail of the frames offered, at most one per ``every_s``."""

    def __init__(
        self,
        *,
        every_s: float = PREVIEW_EVERY_S,
        width: int = PREVIEW_WIDTH,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._every_s = every_s
        self._width = width
        self._clock = clock
        self._last: float | None = None
        self._pending: torch.Tensor | None = None
        self._lock = threading.Lock()

    def offer(self, frame: torch.Tensor) -> None:
        """Keep a thumbnail of ``frame`` (H, W, 3) when the last one is old enough."""
        now = self._clock()
        if self._last is not None and now - self._last < self._every_s:
            return
        self._last = now
        small = thumbnail(frame, self._width)
        with self._lock:
            self._pending = small

    def take_jpeg(self) -> bytes | None:
        """The newest thumbnail not taken yet, as JPEG bytes; None when there is none."""
        with self._lock:
            small, self._pending = self._pending, None
        return None if small is None else jpeg(small)


def jpeg(rgb: torch.Tensor) -> bytes:
    """``rgb`` (H, W, 3) uint8 as a baseline JPEG (FFmpeg's MJPEG encoder)."""
    codec = av.CodecContext.create("mjpeg", "w")
    codec.width, codec.height = rgb.shape[1], rgb.shape[0]
    codec.pix_fmt = "yuvj444p"
    codec.time_base = Fraction(1, 1)
    codec.options = {"qmin": str(JPEG_QSCALE), "qmax": str(JPEG_QSCALE)}
    frame = av.VideoFrame.from_ndarray(rgb.numpy(), format="rgb24").reformat(format="yuvj444p")
    return b"".join(bytes(packet) for packet in [*codec.encode(frame), *codec.encode(None)])


def thumbnail(frame: torch.Tensor, width: int) -> torch.Tensor:
    """``frame`` (H, W, 3), uint8 or uint16, as uint8 at most ``width`` wide (area filter)."""
    pixels = frame.to(torch.float32)
    if frame.dtype == torch.uint16:
        pixels = pixels / _UINT16_TO_8
    height, frame_width = frame.shape[0], frame.shape[1]
    if frame_width > width:
        size = (max(1, round(height * width / frame_width)), width)
        pixels = F.interpolate(pixels.permute(2, 0, 1)[None], size=size, mode="area")[0]
        pixels = pixels.permute(1, 2, 0)
    return pixels.round().clamp(0, 255).to(torch.uint8).contiguous()
