"""RIFE's speed: seconds per synthesised frame at a few sizes, next to the upscalers' cost.

Each size runs RIFE (``upres.pipeline.interpolate.RifeInterpolator``, as the
pipeline does: padded to a multiple of 64, uint8 in and out) between a photo
and the same photo moved 8 pixels, once to warm up, then ``rounds`` times.
The arithmetic is the registry's (``InterpolatorSpec.gflop_per_mpixel``,
counted on the loaded network by tests/unit/test_rife.py), so GFLOP/s says
how hard the device works; the upscalers' per-pixel figures are
``bench/_flops.py``'s.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from bench._clips import parse_size
from bench._flops import compact_macs, rrdbnet_macs
from PIL import Image
from skimage import data

from upres.models.registry import INTERPOLATORS
from upres.pipeline.interpolate import RifeInterpolator

_SHIFT = 8


@dataclass(frozen=True, kw_only=True)
class Speed:
    size: str
    width: int
    height: int
    seconds: float
    rounds: int

    @property
    def gflops(self) -> float:
        mpixels = self.width * self.height / 1e6
        return INTERPOLATORS[0].gflop_per_mpixel * mpixels / self.seconds


def _frames(width: int, height: int) -> tuple[torch.Tensor, torch.Tensor]:
    photo = Image.fromarray(data.chelsea()).resize((width + _SHIFT, height))
    array = np.asarray(photo)
    first = torch.from_numpy(array[:, :width].copy())
    second = torch.from_numpy(array[:, _SHIFT : width + _SHIFT].copy())
    return first, second


def measure(device: torch.device, sizes: Sequence[str], rounds: int) -> list[Speed]:
    rife = RifeInterpolator(device)
    out = []
    for size in sizes:
        width, height = parse_size(size)
        first, second = _frames(width, height)
        rife.between(first, second, (0.5,))
        if device.type == "cuda":
            torch.cuda.synchronize()
        started = time.perf_counter()
        for _ in range(rounds):
            rife.between(first, second, (0.5,))
        if device.type == "cuda":
            torch.cuda.synchronize()
        seconds = (time.perf_counter() - started) / rounds
        out.append(Speed(size=size, width=width, height=height, seconds=seconds, rounds=rounds))
    return out


def section(speeds: Sequence[Speed], device: torch.device, threads: int) -> str:
    spec = INTERPOLATORS[0]
    x4plus = 2 * rrdbnet_macs() / 1e3
    compact = 2 * compact_macs() / 1e3
    where = f"{device.type}, {threads} torch threads" if device.type == "cpu" else device.type
    lines = [
        f"RIFE ({spec.id}) fp32 on {where}; `bench/throughput.py --kinds interpolation "
        f"--device {device.type}`. One synthesised frame between a photo and the same photo "
        f"moved {_SHIFT} pixels, after one warm-up run.",
        "",
        "| size | s per synthesised frame | frames/s | GFLOP/s | rounds |",
        "|---|---|---|---|---|",
    ]
    for s in speeds:
        lines.append(
            f"| {s.size} ({s.width}x{s.height}) | {s.seconds:.3f} | {1 / s.seconds:.2f} | "
            f"{s.gflops:.1f} | {s.rounds} |"
        )
    lines += [
        "",
        "| network | GFLOP per Mpixel it runs on | per output Mpixel at 4x |",
        "|---|---|---|",
        f"| {spec.id}, per synthesised frame | {spec.gflop_per_mpixel:,.1f} | "
        f"{spec.gflop_per_mpixel:,.1f} (run at the output size) |",
        f"| realesrgan-x4plus | {x4plus:,.0f} | {x4plus / 16:,.0f} |",
        f"| realesr-animevideov3 | {compact:,.0f} | {compact / 16:,.1f} |",
    ]
    return "\n".join(lines)
