"""Clips with known motion for the temporal bench, degraded as camera footage.

Each clip is a sequence of sharp "truth" frames at the output size, cut from
skimage's photos, with the exact motion between them in output pixels, and
the low-res input made from them: Gaussian blur (sigma 0.8 x factor),
downscale, fresh Gaussian noise in every frame (sigma 4 levels) and H.264
(CRF 18, through PyAV), as a camera and its encoder would.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

import av
import numpy as np
from PIL import Image, ImageFilter
from skimage import data

from upres.pipeline.colorimetry import TO_RGB_FLAGS

NOISE_SIGMA = 4.0
CRF = 18


@dataclass(frozen=True, kw_only=True)
class Clip:
    """``truth``: (T, S, S, 3) uint8 frames at the output size; ``low``: the degraded
    (T, S/f, S/f, 3) input; ``clean_low``: the input without blur, noise or codec;
    ``motion``: (T, S, S, 2) per output pixel, where in the previous frame (x, y offset)
    its content was, NaN where it was not visible (disocclusion, or frame 0 and cuts)."""

    name: str
    truth: np.ndarray
    low: np.ndarray
    clean_low: np.ndarray
    motion: np.ndarray
    cuts: tuple[int, ...]


def _photo(name: str) -> np.ndarray:
    image: np.ndarray = getattr(data, name)()
    return np.ascontiguousarray(image[..., :3])


def _cartoon(name: str) -> np.ndarray:
    """An anime-like picture: a photo with flat colour areas and dark outlines."""
    image = Image.fromarray(_photo(name)).filter(ImageFilter.MedianFilter(5))
    flat = image.quantize(colors=10).convert("RGB").filter(ImageFilter.ModeFilter(5))
    edges = flat.convert("L").filter(ImageFilter.FIND_EDGES).point(lambda v: 255 if v > 24 else 0)
    lines = np.asarray(edges.filter(ImageFilter.MaxFilter(3))) > 0
    out = np.asarray(flat).copy()
    out[lines] = (30, 25, 35)
    return out


def _crop(image: np.ndarray, top: float, left: float, size: int) -> np.ndarray:
    t, le = round(top), round(left)
    return image[t : t + size, le : le + size].copy()


def _uniform_motion(frames: int, size: int, dx: int, dy: int) -> np.ndarray:
    motion = np.zeros((frames, size, size, 2), np.float32)
    motion[..., 0], motion[..., 1] = dx, dy
    motion[0] = np.nan
    return motion


def pan(
    name: str, factor: int, frames: int, step: tuple[int, int], low: int, cartoon: bool = False
) -> Clip:
    """A camera moving ``step`` output pixels (x, y) per frame over a photo."""
    image = _cartoon(name) if cartoon else _photo(name)
    size = low * factor
    truth = np.stack([_crop(image, 8 + t * step[1], 8 + t * step[0], size) for t in range(frames)])
    label = f"pan-{name}" + ("-cartoon" if cartoon else "")
    return _degraded(label, truth, factor, _uniform_motion(frames, size, *step), ())


def still(name: str, factor: int, frames: int, low: int) -> Clip:
    """A still camera: the truth never changes, so any change of the output is flicker."""
    size = low * factor
    image = _photo(name)
    top = (image.shape[0] - size) // 2
    truth = np.stack([_crop(image, top, (image.shape[1] - size) // 2, size)] * frames)
    return _degraded(f"still-{name}", truth, factor, _uniform_motion(frames, size, 0, 0), ())


def occluder(name: str, factor: int, frames: int, low: int) -> Clip:
    """A still background with a textured square sliding over it (2 input pixels a frame)."""
    size, side, step = low * factor, low * factor // 3, 2 * factor
    background = _crop(_photo(name), 40, 40, size)
    patch = _crop(_photo("astronaut"), 180, 180, side)
    truth, motion = [], _uniform_motion(frames, size, 0, 0)
    top = (size - side) // 2
    for t in range(frames):
        frame, left = background.copy(), step * t
        frame[top : top + side, left : left + side] = patch[:, : max(0, min(side, size - left))]
        truth.append(frame)
        if t > 0:
            motion[t, top : top + side, left - step : left + side] = np.nan
            motion[t, top : top + side, left : left + side, 0] = -step
            motion[t, top : top + side, left : left + side, 1] = 0
    return _degraded(f"occluder-{name}", np.stack(truth), factor, motion, ())


def cut(first: str, second: str, factor: int, frames: int, low: int) -> Clip:
    """Two pans joined by a hard cut in the middle."""
    half = frames // 2
    a = pan(first, factor, half, (2 * factor, 0), low)
    b = pan(second, factor, frames - half, (0, 2 * factor), low)
    truth = np.concatenate([a.truth, b.truth])
    motion = np.concatenate([a.motion, b.motion])
    return _degraded(f"cut-{first}-{second}", truth, factor, motion, (half,))


def _degraded(
    name: str, truth: np.ndarray, factor: int, motion: np.ndarray, cuts: tuple[int, ...]
) -> Clip:
    size = truth.shape[1] // factor
    rng = np.random.default_rng(7)
    clean, noisy = [], []
    for frame in truth:
        clean.append(_resize(frame, size))
        blurred = np.asarray(Image.fromarray(frame).filter(ImageFilter.GaussianBlur(0.8 * factor)))
        small = _resize(blurred, size).astype(np.float32)
        noise = rng.normal(0.0, NOISE_SIGMA, small.shape)
        noisy.append(np.clip(small + noise, 0, 255).round().astype(np.uint8))
    low = h264(np.stack(noisy))
    return Clip(
        name=name, truth=truth, low=low, clean_low=np.stack(clean), motion=motion, cuts=cuts
    )


def _resize(frame: np.ndarray, size: int) -> np.ndarray:
    if frame.shape[0] == size:
        return frame
    return np.asarray(Image.fromarray(frame).resize((size, size), Image.Resampling.BICUBIC))


def h264(frames: np.ndarray, crf: int = CRF) -> np.ndarray:
    """The frames through libx264 (yuv420p, ``crf``) and back to RGB as upres's decoder
    converts them (``TO_RGB_FLAGS``: chroma interpolated). PyAV's default conversion
    repeats each chroma sample over 2x2 pixels: a blocky colour upres never sees, which
    the networks sharpen into a grid."""
    buffer = io.BytesIO()
    with av.open(buffer, "w", format="mp4") as out:
        # One thread: x264's frame threads make the output depend on timing, and the bench
        # must see the same clip in every run.
        options = {"crf": str(crf), "preset": "medium", "threads": "1"}
        stream = out.add_stream("libx264", rate=24, options=options)
        stream.width, stream.height = frames.shape[2], frames.shape[1]
        stream.pix_fmt = "yuv420p"
        for frame in frames:
            out.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
        out.mux(stream.encode(None))
    buffer.seek(0)
    with av.open(buffer) as source:
        decoded = [
            f.reformat(format="rgb24", interpolation=TO_RGB_FLAGS).to_ndarray()
            for f in source.decode(video=0)
        ]
    return np.stack(decoded)
