"""Frame interpolation bench: RIFE against blending and repeating, on real photos in motion.

Clips are made from ``skimage.data`` photos (astronaut, chelsea, coffee,
rocket) by moving a window over them: pans at 2, 6 and 12 pixels per frame,
a zoom, an object (a crop of another photo) crossing a still background,
and a cut from one photo to another. Every other frame is dropped and made
again from its two neighbours by RIFE (``upres.pipeline.interpolate``), by
blending the neighbours half and half, and by repeating the earlier one;
each is scored by PSNR (RGB) against the dropped frame. Across the cut the
stage's own rule (``Retimer``: the scene-cut test, then the nearer real
frame) runs, and the bench checks no frame mixes the two shots.

It also measures the scene-cut test's misses and false fires on every pair
of consecutive frames of clips with known cuts (including cuts between two
parts of the same photo: the same light, a different picture), and the two
orders of interpolation and upscaling (``--orders``).

Run ``make bench-interpolation``; it writes its sections of docs/QUALITY.md.
"""

from __future__ import annotations

import argparse
import platform
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np
import torch
from bench import _report
from bench._interpolation_orders import compare_orders, orders_table
from bench.quality import psnr
from PIL import Image
from skimage import data

from upres.pipeline.decode import DecodeSummary, TimedBatch
from upres.pipeline.frames import FrameBatch
from upres.pipeline.interpolate import Retimer, Retiming, RifeInterpolator
from upres.pipeline.scenecut import HISTOGRAM_CUT, histogram_distance, is_cut

DOCS = Path(__file__).resolve().parent.parent / "docs"
PHOTOS = ("astronaut", "chelsea", "coffee", "rocket")
WIDTH, HEIGHT = 192, 128
FRAMES = 9
Clip = list[np.ndarray]


def _photo(name: str) -> np.ndarray:
    return np.ascontiguousarray(getattr(data, name)()[..., :3])


def window(image: np.ndarray, left: float, top: float, zoom: float = 1.0) -> np.ndarray:
    """The WIDTHxHEIGHT view of ``image`` from (left, top), ``zoom`` times closer (bicubic)."""
    w, h = WIDTH / zoom, HEIGHT / zoom
    box = (left, top, left + w, top + h)
    picture = Image.fromarray(image).transform(
        (WIDTH, HEIGHT), Image.Transform.EXTENT, box, Image.Resampling.BICUBIC
    )
    return np.asarray(picture)


def pan(name: str, speed: float) -> Clip:
    image = _photo(name)
    return [window(image, 100 + speed * i, 120 + speed * i / 3) for i in range(FRAMES)]


def zoom(name: str) -> Clip:
    image = _photo(name)
    out = []
    for i in range(FRAMES):
        z = 1.0 + 0.03 * i
        cx, cy = 100 + WIDTH / 2, 120 + HEIGHT / 2
        out.append(window(image, cx - WIDTH / 2 / z, cy - HEIGHT / 2 / z, z))
    return out


def crossing(name: str, other: str, speed: float = 10.0) -> Clip:
    background = window(_photo(name), 100, 120)
    sprite = window(_photo(other), 150, 80)[:48, :48]
    out = []
    for i in range(FRAMES):
        frame = background.copy()
        left = int(8 + speed * i)
        visible = sprite[:, : max(0, min(48, WIDTH - left))]
        frame[40 : 40 + 48, left : left + visible.shape[1]] = visible
        out.append(frame)
    return out


def cut(name: str, other: str, speed: float = 4.0) -> Clip:
    first, second = pan(name, speed), pan(other, speed)
    return first[:5] + second[5:]


def clips() -> dict[str, tuple[str, Clip]]:
    """name -> (kind, frames)."""
    out: dict[str, tuple[str, Clip]] = {}
    for i, photo in enumerate(PHOTOS):
        other = PHOTOS[(i + 1) % len(PHOTOS)]
        for speed in (2, 6, 12):
            out[f"pan{speed}-{photo}"] = (f"pan {speed} px/frame", pan(photo, speed))
        out[f"zoom-{photo}"] = ("zoom 3%/frame", zoom(photo))
        out[f"cross-{photo}"] = ("object crossing 10 px/frame", crossing(photo, other))
        out[f"cut-{photo}"] = ("scene cut", cut(photo, other))
    return out


@dataclass(frozen=True, kw_only=True)
class Row:
    clip: str
    kind: str
    rife: float
    blend: float
    repeat: float
    mixed: int


def _retimed_middles(clip: Clip, rife: RifeInterpolator) -> list[np.ndarray]:
    """The stage's frames halfway between the kept frames (0, 2, 4, ...), by ``Retimer``."""
    kept = clip[::2]
    ms = Fraction(1, 1000)
    batch = TimedBatch(
        frames=FrameBatch(
            pixels=torch.from_numpy(np.stack(kept)),
            pts=tuple(100 * i for i in range(len(kept))),
            first_index=0,
        ),
        durations=(100,) * len(kept),
    )
    summary = DecodeSummary(
        frames=5, packets=5, skipped_packets=0, concealed_frames=0, hardware=False
    )
    timing = Retiming(
        origin=Fraction(0), step=Fraction(1, 20), slowmo=1, source_time_base=ms, time_base=ms
    )
    retimer = Retimer(timing=timing, interpolator=rife, start=None, end=None, batch_size=1)
    frames = [
        f.numpy()
        for item in retimer.run(iter([batch, summary]))
        if isinstance(item, TimedBatch)
        for f in item.frames.pixels
    ]
    return frames[1:-2:2]


def _mixes(frame: np.ndarray, a: np.ndarray, b: np.ndarray) -> bool:
    """Whether ``frame`` is neither ``a`` nor ``b`` (a blend or a warp of both)."""
    return max(psnr(frame, a), psnr(frame, b)) < 60.0


def score_clip(name: str, kind: str, clip: Clip, rife: RifeInterpolator) -> Row:
    made = _retimed_middles(clip, rife)
    rife_scores, blend_scores, repeat_scores, mixed = [], [], [], 0
    for j, middle in enumerate(made):
        before, truth, after = clip[2 * j], clip[2 * j + 1], clip[2 * j + 2]
        blended = ((before.astype(np.float64) + after) / 2).round()
        rife_scores.append(psnr(middle, truth))
        blend_scores.append(psnr(blended, truth))
        repeat_scores.append(psnr(before, truth))
        if kind == "scene cut" and j == 2:
            mixed += _mixes(middle, before, after)
    return Row(
        clip=name,
        kind=kind,
        rife=float(np.mean(rife_scores)),
        blend=float(np.mean(blend_scores)),
        repeat=float(np.mean(repeat_scores)),
        mixed=mixed,
    )


@dataclass(frozen=True, kw_only=True)
class CutScores:
    pairs: int
    cuts: int
    misses: list[str]
    false_fires: list[str]
    closest_motion: float
    closest_cut: float


def _luma(frame: np.ndarray) -> torch.Tensor:
    weights = torch.tensor((0.299, 0.587, 0.114))
    return (torch.from_numpy(frame.copy()).float() @ weights) / 255.0


def cut_detection(all_clips: dict[str, tuple[str, Clip]]) -> CutScores:
    """The cut test on every pair of frames 1 and 2 apart (the stage's pairs when every
    other frame is dropped), then on known cuts between parts of one photo."""
    pairs: list[tuple[str, np.ndarray, np.ndarray, bool]] = []
    for name, (kind, clip) in all_clips.items():
        for stride in (1, 2):
            for i in range(len(clip) - stride):
                truth = kind == "scene cut" and i <= 4 < i + stride
                pairs.append((f"{name} {i}-{i + stride}", clip[i], clip[i + stride], truth))
    for photo in PHOTOS:  # same photo, another part of it: the same light
        image = _photo(photo)
        pairs.append((f"{photo} same-light", window(image, 0, 0), window(image, 300, 300), True))
    misses, fires = [], []
    motion, cuts = [], []
    for label, a, b, truth in pairs:
        found = is_cut(torch.from_numpy(a.copy()), torch.from_numpy(b.copy()))
        (cuts if truth else motion).append(histogram_distance(_luma(a), _luma(b)))
        if truth and not found:
            misses.append(label)
        if found and not truth:
            fires.append(label)
    return CutScores(
        pairs=len(pairs),
        cuts=len(cuts),
        misses=misses,
        false_fires=fires,
        closest_motion=max(motion),
        closest_cut=min(cuts),
    )


def _table(rows: Sequence[Row]) -> list[str]:
    lines = [
        "| clip | motion | RIFE dB | blend dB | repeat dB | RIFE - blend |",
        "|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r.clip} | {r.kind} | {r.rife:.2f} | {r.blend:.2f} | {r.repeat:.2f} | "
            f"{r.rife - r.blend:+.2f} |"
        )
    return lines


def _means(rows: Sequence[Row]) -> list[str]:
    lines = [
        "| motion | clips | RIFE dB | blend dB | repeat dB | RIFE - blend |",
        "|---|---|---|---|---|---|",
    ]
    kinds = dict.fromkeys(r.kind for r in rows)
    for kind in kinds:
        group = [r for r in rows if r.kind == kind]
        rife, blend = np.mean([r.rife for r in group]), np.mean([r.blend for r in group])
        repeat = np.mean([r.repeat for r in group])
        lines.append(
            f"| {kind} | {len(group)} | {rife:.2f} | {blend:.2f} | {repeat:.2f} | "
            f"{rife - blend:+.2f} |"
        )
    return lines


def report(rows: Sequence[Row], cuts: CutScores, seconds: float) -> str:
    moving = [r for r in rows if r.kind != "scene cut"]
    gain = float(np.mean([r.rife - r.blend for r in moving]))
    worst = min(moving, key=lambda r: r.rife - r.blend)
    mixed = sum(r.mixed for r in rows)
    lines = [
        f"Made by `make bench-interpolation` (`bench/interpolation.py`) in {seconds:.0f} s on "
        f"{platform.machine()} ({torch.get_num_threads()} torch threads), RIFE fp32 on the CPU. "
        f"Clips: {WIDTH}x{HEIGHT}, {FRAMES} frames each, from the four photos; frames 1, 3, 5, "
        "7 dropped and made again from their neighbours. PSNR is RGB over the whole frame "
        "(edges included, where new picture enters).",
        "",
        f"**Target: RIFE at least 3 dB above blending on moving content: "
        f"{'reached' if gain >= 3 else 'missed'}** (mean {gain:+.2f} dB over the "
        f"{len(moving)} moving clips; the smallest gain {worst.rife - worst.blend:+.2f} dB, "
        f"{worst.clip}). **No frame across a cut mixes two shots: "
        f"{'reached' if mixed == 0 else f'missed ({mixed})'}** (the stage repeats the nearer "
        "real frame; at the cut's midpoint the later one).",
        "",
        "### Means per motion",
        "",
        *_means(rows),
        "",
        "### Scene cuts: the detector on every consecutive pair",
        "",
        f"{cuts.pairs} pairs of frames 1 and 2 apart, {cuts.cuts} of them across a cut (two "
        "per cut clip, and a cut between two far-apart parts of each photo: the same light, "
        "another picture). "
        f"Misses: {len(cuts.misses)}{' (' + ', '.join(cuts.misses) + ')' if cuts.misses else ''}; "
        f"false fires: {len(cuts.false_fires)}"
        f"{' (' + ', '.join(cuts.false_fires) + ')' if cuts.false_fires else ''}. "
        f"Histogram distance: largest within a shot {cuts.closest_motion:.3f}, smallest "
        f"across a cut {cuts.closest_cut:.3f}; the threshold (`upres.pipeline.scenecut`) "
        f"is {HISTOGRAM_CUT}.",
        "",
        "### Every clip",
        "",
        *_table(rows),
    ]
    return "\n".join(lines)


# The clips and models of the order comparison (x4plus costs seconds per frame on a CPU).
ORDER_CLIPS = ("pan6-chelsea", "zoom-coffee", "cross-rocket")
ORDER_MODELS = ("realesr-animevideov3", "realesrgan-x4plus")
ORDER_FACTOR = 2


def orders_report(rife: RifeInterpolator) -> str:
    all_clips = clips()
    chosen = {name: all_clips[name][1] for name in ORDER_CLIPS}
    rows = [r for m in ORDER_MODELS for r in compare_orders(chosen, m, ORDER_FACTOR, rife)]
    return "\n".join(
        [
            f"Made by `make bench-interpolation` (`--orders`): {WIDTH // ORDER_FACTOR}x"
            f"{HEIGHT // ORDER_FACTOR} area-downscaled copies of the clips, {ORDER_FACTOR}x "
            f"to {WIDTH}x{HEIGHT} on the CPU (ncnn), RIFE fp32; frames 1, 3, 5, 7 synthesised. "
            "`first`: RIFE on the low-resolution frames, then the model; `after`: RIFE on "
            "the model's frames. Seconds: each order's extra work per synthesised frame.",
            "",
            *orders_table(rows),
        ]
    )


# The clips shown as crops: blend | RIFE | the dropped frame, 2x enlarged (nearest).
CROP_CLIPS = ("pan12-chelsea", "cross-astronaut", "cut-coffee")


def save_crops(rife: RifeInterpolator) -> list[str]:
    """One PNG per ``CROP_CLIPS`` clip, of its frame 5 (made from frames 4 and 6)."""
    all_clips = clips()
    names = []
    for name in CROP_CLIPS:
        clip = all_clips[name][1]
        middle = _retimed_middles(clip, rife)[2]
        blended = ((clip[4].astype(np.float64) + clip[6]) / 2).round().astype(np.uint8)
        gap = np.full((HEIGHT, 4, 3), 255, np.uint8)
        strip = np.concatenate((blended, gap, middle, gap, clip[5]), axis=1)
        big = strip.repeat(2, axis=0).repeat(2, axis=1)
        file = f"interpolation_{name}.png"
        Image.fromarray(big).save(DOCS / file, optimize=True)
        names.append(file)
    return names


def _write(name: str, body: str, *, write: bool) -> None:
    print(body)
    if write:
        _report.write_section(DOCS / "QUALITY.md", name, body, prefix="interpolation")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--no-write", action="store_true", help="print instead of writing docs")
    parser.add_argument("--orders", action="store_true", help="only the two orders")
    parser.add_argument("--crops", action="store_true", help="only the crops (docs/*.png)")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    rife = RifeInterpolator(torch.device("cpu"))
    if args.crops:
        print("\n".join(save_crops(rife)))
        return 0
    if args.orders:
        _write("orders", orders_report(rife), write=not args.no_write)
        return 0
    all_clips = clips()
    rows = [score_clip(name, kind, clip, rife) for name, (kind, clip) in all_clips.items()]
    body = report(rows, cut_detection(all_clips), time.perf_counter() - started)
    _write("rife", body, write=not args.no_write)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
