"""Benchmark clips: a camera panning and zooming over real photographs.

The photographs are the ones scikit-image ships inside its wheel (astronaut,
chelsea, coffee, rocket), laid side by side on one strip. Each frame is a
16:9 window of that strip, resampled to the clip size, with sensor-like
noise, then H.264-compressed at a consumer bit rate, with an AAC track, so
decode, the model and the encoder all see realistic content and motion. The
camera moves a fixed number of strip pixels per frame (bouncing at the
ends), so motion per frame does not depend on the clip length.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import skimage.data
import torch
from testkit.media import write_tone
from torch.nn import functional

PHOTOS = ("astronaut", "chelsea", "coffee", "rocket")
STRIP_HEIGHT = 512
SIZES: dict[str, tuple[int, int]] = {
    "180p": (320, 180),
    "360p": (640, 360),
    "540p": (960, 540),
    "720p": (1280, 720),
    "1080p": (1920, 1080),
}
_PAN_PX_PER_FRAME = 6.0
_ZOOM_PERIOD_FRAMES = 96
_AUDIO_RATE = 48_000


@dataclass(frozen=True, kw_only=True)
class ClipSpec:
    """One benchmark clip: size, length, frame rate, noise (sigma, 8-bit levels), x264 CRF
    and keyframe interval (None: x264's default, 250 frames)."""

    width: int
    height: int
    frames: int
    fps: int = 24
    noise: float = 3.0
    crf: int = 26
    seed: int = 0
    gop: int | None = None

    @property
    def name(self) -> str:
        gop = f"-g{self.gop}" if self.gop is not None else ""
        return (
            f"pan-{self.width}x{self.height}-{self.frames}f-{self.fps}fps"
            f"-n{self.noise:g}-crf{self.crf}-s{self.seed}{gop}.mp4"
        )


def parse_size(text: str) -> tuple[int, int]:
    """``360p`` / ``720p`` / ``1080p`` / ``180p`` or ``WxH`` -> (width, height).

    Raises ValueError for anything else or an odd dimension (4:2:0 needs even sizes).
    """
    if text in SIZES:
        return SIZES[text]
    width, sep, height = text.lower().partition("x")
    if not sep or not width.isdigit() or not height.isdigit():
        raise ValueError(f"size {text!r} is not one of {sorted(SIZES)} nor WxH")
    size = (int(width), int(height))
    if size[0] % 2 or size[1] % 2 or min(size) < 16:
        raise ValueError(f"size {text!r} must be even and at least 16x16")
    return size


def photo_strip() -> torch.Tensor:
    """The photographs side by side at one height: (1, 3, STRIP_HEIGHT, W) floats in [0, 1]."""
    parts = []
    for name in PHOTOS:
        image = torch.from_numpy(getattr(skimage.data, name)().copy())
        planar = image.permute(2, 0, 1)[None].float().div(255.0)
        width = round(planar.shape[-1] * STRIP_HEIGHT / planar.shape[-2])
        parts.append(
            functional.interpolate(
                planar, size=(STRIP_HEIGHT, width), mode="bicubic", antialias=True
            )
        )
    return torch.cat(parts, dim=-1).clamp(0.0, 1.0)


def camera(index: int, strip_width: int, aspect: float) -> tuple[float, float, float]:
    """Centre x, centre y and window height (strip pixels) of frame ``index``."""
    zoom = 1.3 + 0.25 * math.sin(2 * math.pi * index / _ZOOM_PERIOD_FRAMES)
    height = STRIP_HEIGHT / zoom
    half_width = height * aspect / 2
    travel = strip_width - 2 * half_width
    position = (index * _PAN_PX_PER_FRAME) % (2 * travel)
    x = half_width + (position if position <= travel else 2 * travel - position)
    y = STRIP_HEIGHT / 2 + (STRIP_HEIGHT - height) / 2 * math.sin(index / 17)
    return x, y, height


def render(strip: torch.Tensor, index: int, spec: ClipSpec) -> np.ndarray:
    """Frame ``index`` of ``spec`` as (H, W, 3) uint8 RGB."""
    strip_height, strip_width = strip.shape[-2:]
    aspect = spec.width / spec.height
    x, y, height = camera(index, strip_width, aspect)
    theta = torch.tensor(
        [
            [height * aspect / strip_width, 0.0, 2 * x / strip_width - 1],
            [0.0, height / strip_height, 2 * y / strip_height - 1],
        ]
    )[None]
    grid = functional.affine_grid(theta, [1, 3, spec.height, spec.width], align_corners=False)
    window = functional.grid_sample(strip, grid, mode="bicubic", align_corners=False)
    noise = torch.randn(window.shape, generator=torch.Generator().manual_seed(spec.seed + index))
    pixels = window.mul(255.0).add_(noise.mul_(spec.noise)).round_().clamp_(0, 255)
    return pixels[0].permute(1, 2, 0).to(torch.uint8).numpy()


def make_clip(spec: ClipSpec, folder: Path) -> Path:
    """Write ``spec`` under ``folder`` (reused when already there) and return its path."""
    path = folder / spec.name
    if path.exists():
        return path
    folder.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.part")
    _write(spec, partial)
    partial.replace(path)
    return path


def _write(spec: ClipSpec, path: Path) -> None:
    strip = photo_strip()
    with av.open(str(path), mode="w", format="mp4") as out:
        video = out.add_stream("libx264", rate=spec.fps)
        video.width, video.height, video.pix_fmt = spec.width, spec.height, "yuv420p"
        video.options = {"crf": str(spec.crf), "preset": "veryfast"}
        if spec.gop is not None:
            video.options |= {"g": str(spec.gop)}
        audio = out.add_stream("aac", rate=_AUDIO_RATE, layout="stereo")
        for index in range(spec.frames):
            frame = av.VideoFrame.from_ndarray(render(strip, index, spec), format="rgb24")
            frame.pts, frame.time_base = index, Fraction(1, spec.fps)
            out.mux(video.encode(frame))
        out.mux(video.encode(None))
        write_tone(out, audio, spec.frames / spec.fps, amplitude=0.1)
