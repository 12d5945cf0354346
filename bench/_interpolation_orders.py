"""Where the frame-rate stage runs: before upscaling (on the source frames) or after.

On a clip with every other frame dropped, brought to 2x the frame rate and
``factor`` times the size from a low-resolution copy (area downscale):

- ``first``: RIFE between the low-resolution frames, then the model on every frame;
- ``after``: the model on the kept frames, then RIFE between the upscaled frames.

Scores per synthesised frame: PSNR against the dropped original; PSNR against
the model's own output on the dropped frame's low-resolution copy (how far
the frame is from what a real frame would have looked like after the model);
detail, the Laplacian energy of the synthesised frame over the mean of its
two real neighbours' (below 1: softer than the frames around it, which shows
as texture pulsing at half the frame rate); and the seconds per synthesised
frame of each order's extra work (model and RIFE).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from bench.quality import laplacian_energy, psnr

from upres.domain.tasks import Factor
from upres.models.registry import get_model
from upres.pipeline.interpolate import RifeInterpolator
from upres.pipeline.runtimes import Device, build_upscaler, place
from upres.pipeline.upscale import resize

Upscale = Callable[[np.ndarray], np.ndarray]


@dataclass(frozen=True, kw_only=True)
class OrderRow:
    model: str
    clip: str
    order: str
    psnr_truth: float
    psnr_model: float
    detail: float
    seconds: float


def _downscale(frame: np.ndarray, factor: int) -> np.ndarray:
    planar = torch.from_numpy(frame.copy()).permute(2, 0, 1)[None].float()
    h, w = frame.shape[0] // factor, frame.shape[1] // factor
    small = resize(planar, height=h, width=w, mode="area")
    return small[0].permute(1, 2, 0).round().clamp(0, 255).to(torch.uint8).numpy()


def _upscaler(model: str, factor: int) -> Upscale:
    spec = get_model(model)
    stage = build_upscaler(spec, Factor(factor), place(spec, Device(kind="cpu")))
    return lambda image: stage.upscale(torch.from_numpy(image.copy())[None])[0].numpy()


def _middle(rife: RifeInterpolator, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    made = rife.between(torch.from_numpy(a.copy()), torch.from_numpy(b.copy()), (0.5,))
    return made[0].numpy()


def compare_orders(
    clips: dict[str, list[np.ndarray]], model: str, factor: int, rife: RifeInterpolator
) -> list[OrderRow]:
    """Both orders on each clip (frames 1, 3, 5, 7 synthesised)."""
    upscale = _upscaler(model, factor)
    rows = []
    for name, frames in clips.items():
        low = [_downscale(f, factor) for f in frames]
        real = {i: upscale(low[i]) for i in range(0, len(frames), 2)}
        scores: dict[str, list[tuple[float, float, float, float]]] = {"first": [], "after": []}
        for i in range(1, len(frames) - 1, 2):
            as_real = upscale(low[i])
            started = time.perf_counter()
            first = upscale(_middle(rife, low[i - 1], low[i + 1]))
            first_s = time.perf_counter() - started
            started = time.perf_counter()
            after = _middle(rife, real[i - 1], real[i + 1])
            after_s = time.perf_counter() - started
            around = (laplacian_energy(real[i - 1]) + laplacian_energy(real[i + 1])) / 2
            for order, made, seconds in (("first", first, first_s), ("after", after, after_s)):
                scores[order].append(
                    (
                        psnr(made, frames[i]),
                        psnr(made, as_real),
                        laplacian_energy(made) / around,
                        seconds,
                    )
                )
        for order, values in scores.items():
            mean = np.mean(np.array(values), axis=0)
            rows.append(
                OrderRow(
                    model=model,
                    clip=name,
                    order=order,
                    psnr_truth=float(mean[0]),
                    psnr_model=float(mean[1]),
                    detail=float(mean[2]),
                    seconds=float(mean[3]),
                )
            )
    return rows


def orders_table(rows: Sequence[OrderRow]) -> list[str]:
    lines = [
        "| model | clip | order | PSNR vs original | PSNR vs model on the real frame | "
        "detail vs neighbours | s per synthesised frame |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r.model} | {r.clip} | {r.order} | {r.psnr_truth:.2f} | {r.psnr_model:.2f} | "
            f"{r.detail:.3f} | {r.seconds:.2f} |"
        )
    return lines
