"""Video quality bench: BasicVSR against bicubic and the default on real camera motion.

    make bench-video-quality    (.venv/bin/python bench/video_quality.py)

Clips (bench/_video_clips.py): a sub-pixel pan, a zoom and a moving object,
filmed by a virtual camera over skimage's photographs, degraded as cameras do.
Each method upscales every clip through the pipeline's own model stage (the
runtime ``place`` picks on the CPU, one fresh stage per clip, frames in
order) at 4x (clean, H.264 CRF 20, camera: blur + noise + CRF 20), at 2x
(the x4 network, then area-downscaled) and at 1x (H.264 CRF 23 at full size,
the network, then back down), H.264 decoded as upres decodes it.
``--methods model+prefilter`` feeds the model
its frames through a pre-filter first (bench/_prefilter.py: FFmpeg's
``deblock`` and chroma filters). Scores, averaged over the clips' frames:

- PSNR-Y (dB) against the truth; at 1x also the damaged input's own;
- detail: Laplacian energy of the output / of the truth (1.0 = as sharp);
- warp: mean |out_t(x) - out_{t-1}(x + motion)| along the truth's exact
  motion (bilinear, visible pixels), divided by the truth's own (1.0 = as
  steady as the truth; flicker and crawling texture score above).

``--windows`` measures instead what BasicVSR's windows cost against the whole
clip at once. Results are cached per case (``--cache``), so an interrupted run
resumes; the report goes to docs/QUALITY.md between its markers, with one crop
(``--crop``, ``--crop-case``; written when the file is absent).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path

# Run as a script, the folder on sys.path is bench/; the harness imports itself as `bench`.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np
import torch
from bench import _prefilter, _report
from bench._flops import formula_macs
from bench._video_clips import Shot, degrade, pan, shots
from bench.quality import laplacian_energy, luma, psnr
from PIL import Image
from torch.nn import functional

from upres.domain.tasks import Factor
from upres.models.devices import resolve_device
from upres.models.ncnn_runtime import NcnnCache
from upres.models.registry import get_model
from upres.pipeline.bidirectional import BidirectionalUpscaler
from upres.pipeline.frames import FrameUpscaler
from upres.pipeline.recurrent import RecurrentNetworks
from upres.pipeline.runtimes import build_upscaler, place
from upres.pipeline.upscale import InterpolationUpscaler

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "QUALITY.md"
CROP = "quality_video_pan_x4_h264.png"
METHODS = (
    "bicubic",
    "realesrgan-x4plus",
    "basicvsr-reds4",
    "basicvsr-vimeo90k-bi",
    "basicvsr-vimeo90k-bd",
)
CASES = ((4, "clean"), (4, "h264"), (4, "camera"), (2, "h264"), (1, "h264"))
# What a default run measures: on this 2-core shared CPU the camera case did not fit.
DEFAULT_CASES = "4:clean,4:h264,2:h264,1:h264"
CROP_CASE = "pan-astronaut:4:h264"


@dataclass(frozen=True, kw_only=True)
class Result:
    """One method on one clip at one factor and degradation."""

    method: str
    shot: str
    factor: int
    kind: str
    psnr: float
    input_psnr: float | None
    detail: float
    warp: float
    seconds: float


@dataclass(frozen=True, kw_only=True)
class Loaded:
    """The networks loaded so far, kept across clips as a worker keeps them."""

    recurrent: RecurrentNetworks
    ncnn: NcnnCache


def upscaler(method: str, factor: int, loaded: Loaded) -> FrameUpscaler:
    """A fresh stage for one clip, as a worker on this CPU builds it; ``model+prefilter``
    feeds it its frames through a pre-filter (bench/_prefilter.py) first."""
    method, prefilter = _prefilter.split(method)
    if prefilter is not None:
        return _prefilter.Prefiltered(stage=upscaler(method, factor, loaded), prefilter=prefilter)
    if method == "bicubic":
        return InterpolationUpscaler(Factor(factor))
    spec = get_model(method)
    where = place(spec, resolve_device("cpu"))
    return build_upscaler(
        spec, Factor(factor), where, recurrent=loaded.recurrent, networks=loaded.ncnn
    )


def run_frames(stage: FrameUpscaler, low: np.ndarray) -> np.ndarray:
    """``low`` (T, h, w, 3) through ``stage`` in its batches, in order, as the engine feeds it."""
    step = max(1, stage.batch_size)
    pixels = torch.from_numpy(low)
    parts = [stage.upscale(pixels[i : i + step]) for i in range(0, len(low), step)]
    return torch.cat(parts).numpy()


def warp_error(frames: np.ndarray, motion: np.ndarray) -> float:
    """Mean |frame_t(x) - frame_{t-1}(x + motion_t(x))| (0-1), bilinear, visible pixels."""
    size = frames.shape[1]
    planar = torch.from_numpy(frames).permute(0, 3, 1, 2).double() / 255.0
    xs = torch.arange(size, dtype=torch.float64)
    errors = []
    for t in range(1, len(frames)):
        move = torch.from_numpy(motion[t]).double()
        sx, sy = xs[None, :] + move[..., 0], xs[:, None] + move[..., 1]
        ok = torch.isfinite(sx) & (sx >= 0) & (sx <= size - 1) & (sy >= 0) & (sy <= size - 1)
        grid = torch.stack(((sx + 0.5) / size * 2 - 1, (sy + 0.5) / size * 2 - 1), dim=-1)
        before = functional.grid_sample(
            planar[t - 1 : t], torch.nan_to_num(grid)[None], mode="bilinear", align_corners=False
        )[0]
        errors.append(float((planar[t] - before).abs()[:, ok].mean()))
    return float(np.mean(errors))


def score(out: np.ndarray, shot: Shot, low: np.ndarray, factor: int) -> dict[str, float | None]:
    psnrs = [psnr(luma(o), luma(t)) for o, t in zip(out, shot.truth, strict=True)]
    pairs = list(zip(out, shot.truth, strict=True))
    details = [laplacian_energy(o) / laplacian_energy(t) for o, t in pairs]
    damaged = None
    if factor == 1:
        inputs = zip(low, shot.truth, strict=True)
        damaged = float(np.mean([psnr(luma(i), luma(t)) for i, t in inputs]))
    return {
        "psnr": float(np.mean(psnrs)),
        "input_psnr": damaged,
        "detail": float(np.mean(details)),
        "warp": warp_error(out, shot.motion) / warp_error(shot.truth, shot.motion),
    }


def measure(args: argparse.Namespace) -> list[Result]:
    cache = _load(args.cache)
    loaded = Loaded(recurrent=RecurrentNetworks(), ncnn=NcnnCache())
    crop_path = args.doc.parent / args.crop
    crop_case = _crop_case(args.crop_case)
    for factor, kind in _cases(args):
        for shot in shots(args.low * factor, args.frames):
            if args.shots and shot.name not in args.shots.split(","):
                continue
            low = degrade(shot.truth, factor, kind)
            crop = (shot.name, factor, kind) == crop_case and not crop_path.exists()
            panels = {"truth": shot.truth[len(shot.truth) // 2]}
            for method in args.methods.split(","):
                key = f"{method}|{shot.name}|{factor}|{kind}|{args.low}|{args.frames}"
                if key in cache and not crop:
                    continue
                started = time.monotonic()
                out = run_frames(upscaler(method, factor, loaded), low)
                seconds = time.monotonic() - started
                cache[key] = {**score(out, shot, low, factor), "seconds": seconds}
                _save(args.cache, cache)
                panels[method] = out[len(out) // 2]
                print(f"  {key}: {cache[key]}", file=sys.stderr, flush=True)
            if crop:
                _save_crop(panels, crop_path)
    return [_result(key, value) for key, value in cache.items() if _wanted(key, args)]


def _crop_case(text: str) -> tuple[str, int, str]:
    shot, factor, kind = text.split(":")
    return shot, int(factor), kind


def _cases(args: argparse.Namespace) -> list[tuple[int, str]]:
    asked = {(int(f), k) for f, k in (c.split(":") for c in args.cases.split(","))}
    return [case for case in CASES if case in asked]


def _wanted(key: str, args: argparse.Namespace) -> bool:
    method, _, factor, kind, low, frames = key.split("|")
    chosen = method in args.methods.split(",") and (int(factor), kind) in _cases(args)
    return chosen and (int(low), int(frames)) == (args.low, args.frames)


def _result(key: str, value: dict[str, float | None]) -> Result:
    method, shot, factor, kind, _, _ = key.split("|")
    return Result(
        method=method,
        shot=shot,
        factor=int(factor),
        kind=kind,
        psnr=float(value["psnr"] or 0.0),
        input_psnr=value["input_psnr"],
        detail=float(value["detail"] or 0.0),
        warp=float(value["warp"] or 0.0),
        seconds=float(value["seconds"] or 0.0),
    )


def _load(path: Path) -> dict[str, dict[str, float | None]]:
    if not path.exists():
        return {}
    loaded: dict[str, dict[str, float | None]] = json.loads(path.read_text())
    return loaded


def _save(path: Path, cache: dict[str, dict[str, float | None]]) -> None:
    path.write_text(json.dumps(cache, indent=1))


def _save_crop(panels: dict[str, np.ndarray], path: Path) -> None:
    """truth | each method in ``--methods``' order, a 96 px square from the centre."""
    order = list(panels)
    size = panels["truth"].shape[0]
    side = min(96, size)
    top = (size - side) // 2
    cut = [panels[m][top : top + side, top : top + side] for m in order]
    gap = np.full((side, 4, 3), 255, np.uint8)
    strip = [part for panel in cut for part in (panel, gap)][:-1]
    Image.fromarray(np.concatenate(strip, axis=1)).resize(
        (sum(p.shape[1] for p in strip) * 2, 2 * side), Image.Resampling.NEAREST
    ).save(path, optimize=True)


def table(results: list[Result], methods: list[str]) -> str:
    """One table per factor and degradation: each method averaged over the clips."""
    lines: list[str] = []
    for factor, kind in CASES:
        rows = [r for r in results if (r.factor, r.kind) == (factor, kind)]
        if not rows:
            continue
        base = _mean([r.psnr for r in rows if r.method == "bicubic"])
        lines += [
            f"**{factor}x, {kind}**" + _input_note(rows),
            "",
            "| method | PSNR-Y (dB) | vs bicubic | detail | warp"
            " | PSNR-Y: object / pan / zoom | s/clip |",
            "|---|---:|---:|---:|---:|---|---:|",
        ]
        for method in methods:
            mine = sorted((r for r in rows if r.method == method), key=lambda r: r.shot)
            if not mine:
                continue
            value = _mean([r.psnr for r in mine])
            clips = " / ".join(f"{r.psnr:.2f}" for r in mine)
            lines.append(
                f"| {method} | {value:.2f} | {value - base:+.2f} | "
                f"{_mean([r.detail for r in mine]):.2f} | {_mean([r.warp for r in mine]):.2f} | "
                f"{clips} | {_mean([r.seconds for r in mine]):.1f} |"
            )
        lines.append("")
    return "\n".join(lines)


def _input_note(rows: list[Result]) -> str:
    damaged = [r.input_psnr for r in rows if r.input_psnr is not None and r.method == "bicubic"]
    return f" (the damaged input itself: {_mean(damaged):.2f} dB)" if damaged else ""


def _mean(values: list[float]) -> float:
    return float(np.mean(values)) if values else float("nan")


def windows(args: argparse.Namespace) -> str:
    """The pan at 4x clean, ``--frames`` x2 frames: whole clip against smaller windows."""
    shot = pan(args.low * 4, 2 * args.frames)
    low = degrade(shot.truth, 4, "clean")
    spec = get_model("basicvsr-vimeo90k-bi")
    networks = RecurrentNetworks()
    outputs = {}
    for window in (len(low), len(low) // 2, len(low) // 4):
        stage = BidirectionalUpscaler(
            spec, Factor.X4, networks=networks, device="cpu", window=window
        )
        outputs[window] = run_frames(stage, low)
    whole = outputs[len(low)]
    lines = [
        f"BasicVSR Vimeo-90K BI, pan clip of {len(low)} frames, {args.low} px low-res, 4x clean:",
        "",
        "| window | PSNR-Y vs truth | vs whole clip | worst frame vs truth"
        " | agreement with whole (dB) |",
        "|---:|---:|---:|---:|---:|",
    ]
    reference = _mean([psnr(luma(o), luma(t)) for o, t in zip(whole, shot.truth, strict=True)])
    for window, out in outputs.items():
        per = [psnr(luma(o), luma(t)) for o, t in zip(out, shot.truth, strict=True)]
        agree = [psnr(luma(o), luma(w)) for o, w in zip(out, whole, strict=True)]
        agreement = "identical" if window == len(low) else f"{min(agree):.1f} (worst frame)"
        cost = _mean(per) - reference
        lines.append(
            f"| {window} | {_mean(per):.2f} | {cost:+.2f} | {min(per):.2f} | {agreement} |"
        )
    return "\n".join(lines)


def speed(args: argparse.Namespace) -> str:
    """Seconds per frame (wall and this process's CPU) of each network at one size on the
    CPU, after a warm-up window, with the arithmetic it needs per output pixel."""
    side, frames = 4 * args.low, args.frames
    low = shots(side, frames)[0].truth
    loaded = Loaded(recurrent=RecurrentNetworks(), ncnn=NcnnCache())
    lines = [
        f"{side}x{side} input, 4x, {frames} frames a window, "
        f"{_report.describe(_report.machine(torch.device('cpu')))}:",
        "",
        "| model | runtime | wall s/frame | CPU s/frame | GFLOP/frame | MFLOP/output px |",
        "|---|---|---:|---:|---:|---:|",
    ]
    for method in args.methods.split(","):
        if method == "bicubic":
            continue
        spec = get_model(method)
        run_frames(upscaler(method, 4, loaded), low[:2])
        wall, cpu = time.monotonic(), time.process_time()
        run_frames(upscaler(method, 4, loaded), low)
        wall, cpu = time.monotonic() - wall, time.process_time() - cpu
        flop = 2 * formula_macs(spec)
        runtime = place(spec, resolve_device("cpu")).runtime
        lines.append(
            f"| {method} | {runtime} | {wall / frames:.2f} | {cpu / frames:.2f} | "
            f"{flop * side * side / 1e9:.1f} | {flop / 16 / 1e6:.2f} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--low", type=int, default=32, help="low-res side in pixels")
    parser.add_argument("--frames", type=int, default=8, help="frames per clip")
    parser.add_argument("--cases", default=DEFAULT_CASES, help="factor:degradation, ...")
    parser.add_argument("--shots", default="", help="only these clips (default: all)")
    parser.add_argument("--methods", default=",".join(METHODS))
    parser.add_argument("--cache", type=Path, default=Path("/tmp/upres-video-quality.json"))
    parser.add_argument("--doc", type=Path, default=DOC)
    parser.add_argument("--crop", default=CROP, help="crop file beside --doc (made if absent)")
    parser.add_argument("--crop-case", default=CROP_CASE, help="shot:factor:degradation")
    parser.add_argument("--windows", action="store_true", help="only the window cost")
    parser.add_argument("--speed", action="store_true", help="only seconds per frame")
    parser.add_argument("--no-doc", action="store_true")
    args = parser.parse_args(argv)
    torch.set_num_threads(min(torch.get_num_threads(), 2))
    if args.speed:
        body = speed(args)
        print(body)
        if not args.no_doc:
            _report.write_section(args.doc.with_name("BENCHMARKS.md"), "cpu-video-models", body)
        return 0
    if args.windows:
        body = windows(args)
        section = "video-windows"
    else:
        results = measure(args)
        body = table(results, args.methods.split(","))
        body += f"\n{args.low} px low-res side, {args.frames} frames a clip, "
        body += f"{_report.describe(_report.machine(torch.device('cpu')))}; "
        body += f"the {len(results)} cases took {sum(r.seconds for r in results):.0f} s "
        body += "(measured when first run; later runs read them from --cache)."
        section = "video-quality"
    print(body)
    if not args.no_doc:
        _report.write_section(args.doc, section, body, prefix="bench")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
