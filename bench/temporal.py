"""Temporal bench: does the output flicker, swim or ghost? (part of ``make bench-quality``)

Clips (bench/_temporal_clips.py): pans with known motion, a still shot, an
occluding object and a scene cut, from skimage photos, degraded as camera
footage (blur, fresh noise every frame, H.264). Each method upscales the
clip frame by frame in order; scores (lower is better for the first two):

- **warping error**: mean absolute difference (0-1) between each output frame
  and the previous output frame moved by the *known* motion, over the pixels
  visible in both (Lai et al. 2018's occlusion-masked warping error, with the
  true motion instead of an estimate). On the still shot it is the flicker.
- **cut leak**: mean absolute difference between the frame after the cut and
  the per-frame model's (0: nothing of the old scene carried over).
- **detail** and **consistency (dB)** as in the photo bench, per frame, mean;
  **detail end** is the detail of the last frame of the pans, to show that
  warping does not blur texture away over a clip.

Run: ``.venv/bin/python bench/quality.py --only temporal`` (or all of
``make bench-quality``).
"""

from __future__ import annotations

import argparse
import hashlib
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path

# Run as a script, the folder on sys.path is bench/; the harness imports itself as `bench`.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np
import torch
from bench._temporal_clips import Clip, cut, occluder, pan, still
from bench._temporal_report import (
    ANIME_MODEL,
    DEFAULT_MODEL,
    DEFAULT_MODEL_CLIPS,
    FACTORS,
    FAST_MODEL,
    TemporalRow,
    TemporalRun,
    TemporalScores,
    format_row,
)
from bench.quality import area_downscale, laplacian_energy, psnr
from PIL import Image
from skimage import data
from torch.nn import functional

from upres.domain.tasks import Factor
from upres.models.loader import ModelCache
from upres.models.registry import get_model
from upres.pipeline.motion import DisFlow, FlowEstimator, SpyNetFlow
from upres.pipeline.recurrent import model_upscaler
from upres.pipeline.temporal import StabilisedUpscaler, TemporalSettings, TemporalStabiliser
from upres.pipeline.upscale import InterpolationUpscaler

Frames = np.ndarray
Upscale = Callable[[Frames], Frames]


def clips(factor: int, low: int, frames: int) -> list[Clip]:
    """The bench's clips at ``factor``: two pans, a still, an occluder, a cut."""
    return [
        pan("astronaut", factor, frames, (6 * factor // 4 or 1, 0), low),
        pan("chelsea", factor, frames, (factor, factor), low),
        still("rocket", factor, frames, low),
        occluder("coffee", factor, frames, low),
        cut("astronaut", "chelsea", factor, frames, low),
    ]


def anime_clip(low: int, frames: int) -> Clip:
    return pan("coffee", 4, frames, (6, 0), low, cartoon=True)


def warp_error(frames: Frames, motion: np.ndarray) -> float:
    """Mean |out_t(x) - out_{t-1}(x + motion_t(x))| (0-1) over visible pixels, t >= 1."""
    errors = []
    size = frames.shape[1]
    ys, xs = np.mgrid[0:size, 0:size]
    for t in range(1, len(frames)):
        dx, dy = motion[t, ..., 0], motion[t, ..., 1]
        known = ~np.isnan(dx)
        sx = xs + np.nan_to_num(dx).astype(int)
        sy = ys + np.nan_to_num(dy).astype(int)
        ok = known & (sx >= 0) & (sx < size) & (sy >= 0) & (sy < size)
        if not ok.any():
            continue
        now = frames[t][ok].astype(np.float64)
        before = frames[t - 1][sy[ok], sx[ok]].astype(np.float64)
        errors.append(np.abs(now - before).mean() / 255.0)
    return float(np.mean(errors))


def score_clip(out: Frames, clip: Clip, reference: Frames | None) -> TemporalScores:
    details = [
        laplacian_energy(o) / laplacian_energy(t) for o, t in zip(out, clip.truth, strict=True)
    ]
    low = clip.clean_low.shape[1]
    consistency = [
        psnr(area_downscale(o, low), c) for o, c in zip(out, clip.clean_low, strict=True)
    ]
    leak = None
    if clip.cuts and reference is not None:
        at = clip.cuts[0]
        leak = float(np.abs(out[at].astype(np.float64) - reference[at]).mean() / 255.0)
    return TemporalScores(
        warp_error=warp_error(out, clip.motion),
        detail=float(np.mean(details)),
        detail_end=details[-1],
        consistency=float(np.mean(consistency)),
        cut_leak=leak,
    )


class Replay:
    """A FrameUpscaler that hands back outputs computed before, in order (so the
    stabiliser is measured alone, through the product's own wrapper)."""

    def __init__(self, outputs: Frames, scale: int) -> None:
        self._outputs = torch.from_numpy(outputs)
        self._next = 0
        self._scale = scale

    @property
    def factor(self) -> int:
        return self._scale

    @property
    def batch_size(self) -> int:
        return 1

    def upscale(self, pixels: torch.Tensor) -> torch.Tensor:
        out = self._outputs[self._next : self._next + len(pixels)]
        self._next += len(pixels)
        return out


def per_frame(upscaler: object, low: Frames) -> Frames:
    run = upscaler.upscale  # type: ignore[attr-defined]
    return np.stack([run(torch.from_numpy(np.array(f))[None])[0].numpy() for f in low])


def stabilised(
    low: Frames, raw: Frames, scale: int, flow: FlowEstimator, settings: TemporalSettings
) -> tuple[Frames, float]:
    """The raw outputs through ``StabilisedUpscaler``; also its seconds per frame."""
    wrapper = StabilisedUpscaler(Replay(raw, scale), TemporalStabiliser(flow, settings=settings))
    start = time.perf_counter()
    out = per_frame(wrapper, low)
    return out, (time.perf_counter() - start) / len(low)


def sweep_settings() -> list[tuple[str, TemporalSettings]]:
    """The default and the variants of the trade-off table."""
    base = TemporalSettings()
    return [
        ("default", base),
        *((f"carry {c}", replace(base, carry=c)) for c in (0.5, 0.7, 0.95, 1.0)),
        *((f"tolerance {t}", replace(base, tolerance=t)) for t in (0.04, 0.16)),
        ("margin 0", replace(base, margin_px=0)),
        *((f"sharpen {a}", replace(base, sharpen=a)) for a in (0.3, 0.6)),
    ]


def save_ghost_crop(path: Path, panels: Sequence[Frames], index: int, clip: Clip) -> None:
    """The occluder's trailing edge at frame ``index``, each panel side by side, x3."""
    size = clip.truth.shape[1]
    factor = size // clip.low.shape[1]
    side = size // 3  # the square's side (bench/_temporal_clips.py: occluder)
    top, edge = (size - side) // 2, 2 * factor * index
    rows = slice(max(0, top - side // 4), min(size, top + side + side // 4))
    columns = slice(max(0, edge - side // 2), min(size, edge + side // 2))
    gap = np.full((rows.stop - rows.start, 2, 3), 255, np.uint8)
    parts = [part for p in panels for part in (p[index][rows, columns], gap)][:-1]
    strip = Image.fromarray(np.concatenate(parts, axis=1))
    strip.resize((strip.width * 3, strip.height * 3), Image.Resampling.NEAREST).save(path)


def bicubic(factor: int) -> InterpolationUpscaler:
    return InterpolationUpscaler(Factor(factor))


def flow_for(name: str) -> FlowEstimator:
    return SpyNetFlow(torch.device("cpu")) if name == "spynet" else DisFlow()


def model_frames(
    model_id: str, factor: int, clip: Clip, cache_dir: Path | None, models: ModelCache
) -> tuple[Frames, float]:
    """The per-frame model's outputs for ``clip`` and its seconds per frame, kept in
    ``cache_dir`` (when given) so that sweeps and reruns do not pay for the model again."""
    # Keyed by the input's bytes: a changed clip (or codec build) never reuses old outputs.
    digest = hashlib.sha256(clip.low.tobytes()).hexdigest()[:16]
    name = f"{model_id}_{factor}x_{clip.name}_{digest}.npz"
    path = cache_dir / name if cache_dir is not None else None
    if path is not None and path.exists():
        stored = np.load(path)
        return stored["frames"], float(stored["seconds"])
    spec = get_model(model_id)
    upscaler = model_upscaler(spec, Factor(factor), device="cpu", models=models)
    start = time.perf_counter()
    frames = per_frame(upscaler, clip.low)
    seconds = (time.perf_counter() - start) / len(clip.low)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        np.savez(path, frames=frames, seconds=seconds)
    return frames, seconds


def _row(
    clip: Clip, factor: int, method: str, out: Frames, ref: Frames | None, spf: float
) -> TemporalRow:
    return TemporalRow(
        clip=clip.name,
        factor=factor,
        method=method,
        scores=score_clip(out, clip, ref),
        seconds_per_frame=spf,
    )


def run_clip(
    clip: Clip, factor: int, model_ids: Sequence[str], cache: Path | None, models: ModelCache
) -> tuple[list[TemporalRow], dict[str, Frames]]:
    """Bicubic, then each model per frame and stabilised (default settings, DIS)."""
    start = time.perf_counter()
    outputs = {"bicubic": per_frame(bicubic(factor), clip.low)}
    rows = [
        _row(
            clip,
            factor,
            "bicubic",
            outputs["bicubic"],
            None,
            (time.perf_counter() - start) / len(clip.low),
        )
    ]
    for model_id in model_ids:
        raw, seconds = model_frames(model_id, factor, clip, cache, models)
        out, blend_s = stabilised(clip.low, raw, factor, DisFlow(), TemporalSettings())
        outputs[model_id], outputs[f"{model_id} + temporal"] = raw, out
        rows.append(_row(clip, factor, model_id, raw, raw, seconds))
        rows.append(_row(clip, factor, f"{model_id} + temporal", out, raw, blend_s))
    return rows, outputs


def run(frames: int, low: int, cache: Path | None, folder: Path) -> TemporalRun:
    models = ModelCache()
    rows, sweep, crops, costs = [], [], [], []
    for factor in FACTORS:
        for clip in clips(factor, low, frames):
            ids = [FAST_MODEL] + ([DEFAULT_MODEL] if clip.name in DEFAULT_MODEL_CLIPS else [])
            clip_rows, outputs = run_clip(clip, factor, ids, cache, models)
            rows.extend(clip_rows)
            print(*(format_row(r) for r in clip_rows), sep="\n", flush=True)
            if clip.name.startswith("occluder") and factor == 4:
                crops.append(_ghost_crop(folder, clip, outputs))
            if clip.name == "pan-astronaut" and factor == 4:
                sweep = _sweep(clip, outputs[DEFAULT_MODEL])
                costs = _costs(clip, outputs, models, cache)
    anime = anime_clip(low, frames)
    anime_rows, outputs = run_clip(anime, 4, [FAST_MODEL, ANIME_MODEL], cache, models)
    rows.extend(anime_rows)
    crops.append(_anime_crop(folder, anime, outputs))
    long_clip = pan("astronaut", 4, 4 * frames, (6, 0), low)
    long_rows, _ = run_clip(long_clip, 4, [FAST_MODEL], cache, models)
    return TemporalRun(rows=rows, sweep=sweep, long_pan=long_rows, crops=crops, costs=costs)


def _sweep(clip: Clip, raw: Frames) -> list[tuple[str, TemporalScores]]:
    results = []
    for label, settings in sweep_settings():
        out, _ = stabilised(clip.low, raw, 4, DisFlow(), settings)
        results.append((label, score_clip(out, clip, raw)))
    for label, flow in (
        ("default, SpyNet flow", flow_for("spynet")),
        ("default, DIS stopping at half size", DisFlow(finest_scale=1)),
    ):
        out, _ = stabilised(clip.low, raw, 4, flow, TemporalSettings())
        results.append((label, score_clip(out, clip, raw)))
    return results


def _costs(
    clip: Clip, outputs: dict[str, Frames], models: ModelCache, cache: Path | None
) -> list[tuple[str, int, float, float]]:
    """(flow, output side, stabiliser s/frame, model s/frame) on the same clip and run."""
    _, model_s = model_frames(DEFAULT_MODEL, 4, clip, cache, models)
    found = []
    for name in ("dis", "spynet"):
        _, seconds = stabilised(
            clip.low, outputs[DEFAULT_MODEL], 4, flow_for(name), TemporalSettings()
        )
        found.append((name, clip.truth.shape[1], seconds, model_s))
    return found


def _ghost_crop(folder: Path, clip: Clip, outputs: dict[str, Frames]) -> str:
    name = f"temporal_{clip.name}_x4.png"
    methods = ("bicubic", DEFAULT_MODEL, f"{DEFAULT_MODEL} + temporal")
    panels = [outputs[m] for m in methods if m in outputs] + [clip.truth]
    save_ghost_crop(folder / name, panels, len(clip.low) - 1, clip)
    return name


def _anime_crop(folder: Path, clip: Clip, outputs: dict[str, Frames]) -> str:
    name = f"temporal_{clip.name}_x4.png"
    methods = (
        "bicubic",
        FAST_MODEL,
        f"{FAST_MODEL} + temporal",
        ANIME_MODEL,
        f"{ANIME_MODEL} + temporal",
    )
    last = len(clip.low) - 1
    side = clip.truth.shape[1] // 2
    panels = [outputs[m][last][:side, :side] for m in methods] + [clip.truth[last][:side, :side]]
    gap = np.full((side, 2, 3), 255, np.uint8)
    strip = np.concatenate([part for p in panels for part in (p, gap)][:-1], axis=1)
    Image.fromarray(strip).resize((strip.shape[1] * 2, side * 2), Image.Resampling.NEAREST).save(
        folder / name
    )
    return name


def stabiliser_cost(width: int, height: int, factor: int, frames: int) -> list[tuple[str, float]]:
    """Seconds per frame of the stabiliser alone (flow both ways, checks, warp, blend) on a
    real pan of ``width`` x ``height`` input frames, for each flow estimator."""
    photo = torch.from_numpy(data.astronaut()).permute(2, 0, 1)[None].float()
    big = functional.interpolate(photo, size=(height * 2, width * 2), mode="bilinear")
    low = np.stack(
        [
            big[0, :, :height, 4 * t : 4 * t + width].permute(1, 2, 0).byte().numpy()
            for t in range(frames)
        ]
    )
    raw = per_frame(bicubic(factor), low)
    found = []
    for name in ("dis", "spynet"):
        stabilised(low[:2], raw[:2], factor, flow_for(name), TemporalSettings())  # warm-up
        _, seconds = stabilised(low, raw, factor, flow_for(name), TemporalSettings())
        found.append((name, seconds))
    return found


def main(argv: Sequence[str] | None = None) -> int:
    """Print the stabiliser's CPU cost per frame at 180p -> 720p (docs/BENCHMARKS.md)."""
    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("--size", default="320x180")
    parser.add_argument("--factor", type=int, default=4)
    parser.add_argument("--frames", type=int, default=6)
    args = parser.parse_args(argv)
    width, height = (int(v) for v in args.size.split("x"))
    print(f"| flow | input | output | stabiliser s/frame ({torch.get_num_threads()} threads) |")
    print("|---|---|---|---|")
    for name, seconds in stabiliser_cost(width, height, args.factor, args.frames):
        out = f"{width * args.factor}x{height * args.factor}"
        print(f"| {name} | {width}x{height} | {out} | {seconds:.3f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
