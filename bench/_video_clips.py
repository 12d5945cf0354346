"""Clips with real camera motion over real photographs, for the video quality bench.

A virtual camera films one of skimage's photographs: frame t shows the photo
around centre ``c_t`` at ``s_t`` photo pixels per output pixel, rendered on a
2x supersampled grid (bilinear) and area-averaged, so the truth is sharp but
not aliased. Pans move by fractions of a pixel per frame, the zoom changes
``s_t``, and a moving object is a second photo's patch sliding over a still
background. The motion of every truth pixel back into the previous frame is
known exactly (NaN where it was hidden).

Inputs are made from the truth as a camera and its encoder would:
``clean`` (area downscale), ``h264`` (area downscale, then H.264 CRF 20),
``camera`` (Gaussian blur, area downscale, sensor noise, H.264 CRF 20), and at
1x ``h264`` at CRF 23 on the truth itself. H.264 is decoded to RGB as upres's
decoder converts it (``_temporal_clips.h264``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from bench._temporal_clips import h264
from PIL import Image, ImageFilter
from skimage import data
from torch.nn import functional

LIGHT_CRF = 20
ONE_X_CRF = 23
NOISE_SIGMA = 2.0
Point = tuple[float, float]
DEGRADATIONS = ("clean", "h264", "camera")


@dataclass(frozen=True, kw_only=True)
class Shot:
    """Truth frames (T, S, S, 3) uint8 and, per pixel, its (dx, dy) into the previous frame."""

    name: str
    truth: np.ndarray
    motion: np.ndarray


def _photo(name: str) -> torch.Tensor:
    image = getattr(data, name)()
    image = np.stack([image] * 3, axis=-1) if image.ndim == 2 else image[..., :3]
    image = np.ascontiguousarray(image)
    return torch.from_numpy(image).permute(2, 0, 1)[None].float()


def _render(
    photo: torch.Tensor, centre: tuple[float, float], step: float, size: int
) -> torch.Tensor:
    """(3, size, size) floats: the photo around ``centre`` (x, y photo px), ``step`` photo
    px per output px, sampled at 2x and area-averaged."""
    fine = 2 * size
    offsets = (torch.arange(fine, dtype=torch.float64) + 0.5) / 2 - size / 2
    height, width = photo.shape[-2:]
    gx = (centre[0] + offsets * step) / width * 2 - 1
    gy = (centre[1] + offsets * step) / height * 2 - 1
    grid = torch.stack(torch.meshgrid(gy, gx, indexing="ij")[::-1], dim=-1)[None].float()
    sampled = functional.grid_sample(photo, grid, mode="bilinear", align_corners=False)
    return functional.avg_pool2d(sampled, 2)[0]


def _camera_motion(size: int, centres: list[Point], steps: list[float]) -> np.ndarray:
    """Where each pixel of frame t was in frame t-1 (x' - x, y' - y), for a camera
    that maps output x to photo ``c_t + s_t (x - size/2)``."""
    xs = np.arange(size) + 0.5 - size / 2
    motion = np.full((len(steps), size, size, 2), np.nan, np.float32)
    for t in range(1, len(steps)):
        ratio = steps[t] / steps[t - 1]
        dx = (centres[t][0] - centres[t - 1][0]) / steps[t - 1] + xs * (ratio - 1)
        dy = (centres[t][1] - centres[t - 1][1]) / steps[t - 1] + xs * (ratio - 1)
        motion[t, ..., 0] = dx[None, :]
        motion[t, ..., 1] = dy[:, None]
    return motion


def _shot(
    name: str, photo: str, size: int, centres: list[tuple[float, float]], steps: list[float]
) -> Shot:
    image = _photo(photo)
    frames = [_render(image, c, s, size) for c, s in zip(centres, steps, strict=True)]
    truth = torch.stack(frames).permute(0, 2, 3, 1).round().clamp(0, 255).to(torch.uint8).numpy()
    return Shot(name=name, truth=truth, motion=_camera_motion(size, centres, steps))


def pan(size: int, frames: int) -> Shot:
    """A hand-held pan over the astronaut: (0.6, 0.25) output px a frame, sub-pixel steps."""
    step = 320 / size
    centres = [(200 + 0.6 * t * step, 230 + 0.25 * t * step) for t in range(frames)]
    return _shot("pan-astronaut", "astronaut", size, centres, [step] * frames)


def zoom(size: int, frames: int) -> Shot:
    """A slow zoom into the coffee cup (2% a frame) with a slight drift."""
    steps = [300 / size * 0.98**t for t in range(frames)]
    centres = [(300 + 0.3 * t, 200 + 0.2 * t) for t in range(frames)]
    return _shot("zoom-coffee", "coffee", size, centres, steps)


def moving_object(size: int, frames: int) -> Shot:
    """A still camera on the cat; a patch of brick wall slides across (1.25, 0.5) px a frame."""
    background = _render(_photo("chelsea"), (225, 150), 280 / size, size)
    side = size // 3
    patch = _render(_photo("brick"), (256, 256), 200 / side, side)
    truth, motion = [], np.zeros((frames, size, size, 2), np.float32)
    motion[0] = np.nan
    previous = np.zeros((size, size), bool)
    for t in range(frames):
        left, top = 2 + round(1.25 * t * 4) / 4, size // 3 + round(0.5 * t * 4) / 4
        frame, inside = _placed(background, patch, left, top)
        truth.append(frame)
        if t > 0:
            motion[t][inside] = (-1.25, -0.5)
            motion[t][~inside & previous] = np.nan
        previous = inside
    pixels = torch.stack(truth).permute(0, 2, 3, 1).round().clamp(0, 255).to(torch.uint8).numpy()
    return Shot(name="object-chelsea", truth=pixels, motion=motion)


def _placed(
    background: torch.Tensor, patch: torch.Tensor, left: float, top: float
) -> tuple[torch.Tensor, np.ndarray]:
    """The background with ``patch`` at a fractional (left, top), and where it covers."""
    size, side = background.shape[-1], patch.shape[-1]
    xs = (torch.arange(size) + 0.5 - left) / side * 2 - 1
    ys = (torch.arange(size) + 0.5 - top) / side * 2 - 1
    grid = torch.stack(torch.meshgrid(ys, xs, indexing="ij")[::-1], dim=-1)[None]
    moved = functional.grid_sample(patch[None], grid, mode="bicubic", align_corners=False)[0]
    inside = ((xs.abs() < 1)[None, :] & (ys.abs() < 1)[:, None]).numpy()
    frame = background.clone()
    frame[:, torch.from_numpy(inside)] = moved[:, torch.from_numpy(inside)]
    return frame, inside


def shots(size: int, frames: int) -> list[Shot]:
    return [pan(size, frames), zoom(size, frames), moving_object(size, frames)]


def area(frames: np.ndarray, factor: int) -> np.ndarray:
    """(T, H, W, 3) uint8 area-downscaled ``factor`` times."""
    planar = torch.from_numpy(frames).permute(0, 3, 1, 2).float()
    small = functional.avg_pool2d(planar, factor) if factor > 1 else planar
    return small.round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).numpy()


def degrade(truth: np.ndarray, factor: int, kind: str, seed: int = 3) -> np.ndarray:
    """The low-res input of ``truth`` at ``factor`` as degradation ``kind`` makes it."""
    if kind == "clean":
        return area(truth, factor)
    if factor == 1:
        return h264(truth, crf=ONE_X_CRF)
    if kind == "h264":
        return h264(area(truth, factor), crf=LIGHT_CRF)
    blur = ImageFilter.GaussianBlur(0.5 * factor)
    blurred = np.stack([np.asarray(Image.fromarray(f).filter(blur)) for f in truth])
    small = area(blurred, factor).astype(np.float32)
    noise = np.random.default_rng(seed).normal(0.0, NOISE_SIGMA, small.shape)
    return h264(np.clip(small + noise, 0, 255).round().astype(np.uint8), crf=LIGHT_CRF)
