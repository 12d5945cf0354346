"""The temporal bench's results and their section of docs/QUALITY.md (see bench/temporal.py)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from bench.quality import TEMPORAL_MARKER


@dataclass(frozen=True, kw_only=True)
class TemporalScores:
    warp_error: float
    detail: float
    detail_end: float
    consistency: float
    cut_leak: float | None


@dataclass(frozen=True, kw_only=True)
class TemporalRow:
    clip: str
    factor: int
    method: str
    scores: TemporalScores
    seconds_per_frame: float


DEFAULT_MODEL = "realesrgan-x4plus"
FAST_MODEL = "realesr-animevideov3"
ANIME_MODEL = "animesr-v2"
FACTORS = (4, 2, 1)
# The default model costs ~1 minute per frame on a busy 2-core CPU: it runs on
# the clips the targets are about; the fast model runs on all of them.
DEFAULT_MODEL_CLIPS = ("pan-astronaut", "still-rocket", "occluder-coffee")


@dataclass(frozen=True, kw_only=True)
class TemporalRun:
    """Everything the report needs."""

    rows: list[TemporalRow]
    sweep: list[tuple[str, TemporalScores]]
    long_pan: list[TemporalRow]
    crops: list[str]
    costs: list[tuple[str, int, float, float]]


def format_row(r: TemporalRow) -> str:
    s = r.scores
    leak = "-" if s.cut_leak is None else f"{s.cut_leak:.4f}"
    return (
        f"| {r.clip} | {r.factor}x | {r.method} | {s.warp_error:.4f} | {s.detail:.3f} | "
        f"{s.detail_end:.3f} | {s.consistency:.2f} | {leak} | {r.seconds_per_frame:.2f} |"
    )


TABLE_HEAD = [
    "| clip | factor | method | warping error | detail | detail end | consistency dB | cut leak "
    "| s/frame |",
    "|---|---|---|---|---|---|---|---|---|",
]
BEGIN, END = f"<!-- {TEMPORAL_MARKER} begin -->", f"<!-- {TEMPORAL_MARKER} end -->"


def _targets(rows: Sequence[TemporalRow]) -> list[str]:
    """Per factor: the default model stabilised against bicubic and the per-frame model."""
    lines = [
        "| factor | clip | warping error: bicubic / per-frame / stabilised | detail: bicubic / "
        "per-frame / stabilised | stabilised detail / bicubic's | kept of per-frame detail "
        "| targets (error <= bicubic's, detail >= 5x) |",
        "|---|---|---|---|---|---|---|",
    ]
    by = {(r.factor, r.clip, r.method): r.scores for r in rows}
    for factor in FACTORS:
        for clip in DEFAULT_MODEL_CLIPS:
            b = by.get((factor, clip, "bicubic"))
            m = by.get((factor, clip, DEFAULT_MODEL))
            t = by.get((factor, clip, f"{DEFAULT_MODEL} + temporal"))
            if b is None or m is None or t is None:
                continue
            lines.append(
                f"| {factor}x | {clip} | {b.warp_error:.4f} / {m.warp_error:.4f} / "
                f"**{t.warp_error:.4f}** | {b.detail:.3f} / {m.detail:.3f} / {t.detail:.3f} | "
                f"{t.detail / b.detail:.1f}x | {t.detail / m.detail:.0%} | "
                f"{_verdict(t.warp_error <= b.warp_error)}, "
                f"{_verdict(t.detail >= 5 * b.detail)} |"
            )
    return lines


def _verdict(reached: bool) -> str:
    return "reached" if reached else "**not reached**"


def _sweep_table(sweep: Sequence[tuple[str, TemporalScores]]) -> list[str]:
    lines = ["| settings | warping error | detail | detail end |", "|---|---|---|---|"]
    lines += [
        f"| {label} | {s.warp_error:.4f} | {s.detail:.3f} | {s.detail_end:.3f} |"
        for label, s in sweep
    ]
    return lines


def _cost_table(costs: Sequence[tuple[str, int, float, float]]) -> list[str]:
    lines = [
        "| flow | output | stabiliser s/frame | realesrgan-x4plus s/frame | share of e2e |",
        "|---|---|---|---|---|",
    ]
    for name, side, stab, model in costs:
        lines.append(
            f"| {name} | {side}x{side} | {stab:.3f} | {model:.1f} | {stab / (stab + model):.1%} |"
        )
    return lines


def section(result: TemporalRun, notes: str, header: str) -> list[str]:
    """The temporal part of docs/QUALITY.md, between its markers."""
    return [
        BEGIN,
        "## Temporal stability",
        "",
        header,
        "",
        *(line.strip() for line in notes.strip().splitlines()),
        "",
        "### The targets: realesrgan-x4plus per frame and stabilised (default settings)",
        "",
        *_targets(result.rows),
        "",
        "### Trade-off: settings tried (realesrgan-x4plus, 4x pan)",
        "",
        *_sweep_table(result.sweep),
        "",
        "### Cost of the stabiliser (same frames; the model's time from when its outputs were "
        "made, `--cache` keeps them)",
        "",
        *_cost_table(result.costs),
        "",
        "### Crops",
        "",
        "Last frame of the occluder clip at 4x, around the square's trailing edge (it moves "
        "right): bicubic | realesrgan-x4plus per frame | + temporal | truth. Then the "
        "anime-like pan: bicubic | realesr-animevideov3 | + temporal | animesr-v2 | + temporal "
        "| truth.",
        "",
        *(f"![{name}]({name})" for name in result.crops),
        "",
        "### Every clip",
        "",
        *TABLE_HEAD,
        *(format_row(r) for r in result.rows),
        "",
        "### A longer pan (24 frames, realesr-animevideov3): detail over time",
        "",
        *TABLE_HEAD,
        *(format_row(r) for r in result.long_pan),
        END,
    ]


def write_section(doc: Path, lines: Sequence[str]) -> None:
    """Put ``lines`` in ``doc`` between the markers (replacing an older section, or appended)."""
    text = doc.read_text() if doc.exists() else ""
    block = "\n".join(lines)
    if BEGIN in text and END in text:
        text = text[: text.index(BEGIN)] + block + text[text.index(END) + len(END) :]
    else:
        text = text.rstrip("\n") + "\n\n" + block + "\n"
    doc.write_text(text)


NOTES = """
How it is measured (bench/temporal.py, clips in bench/_temporal_clips.py): each clip is cut from
skimage photos at the output size (the truth) and degraded as camera footage: Gaussian blur
(sigma 0.8 x factor), bicubic downscale, fresh Gaussian noise in every frame (sigma 4 levels)
and H.264 (CRF 18, decoded to RGB as upres decodes it). Clips: `pan-astronaut` (1.5 input pixels
a frame to the right), `pan-chelsea` (diagonal), `still-rocket` (nothing moves: its warping
error is the flicker, whose truth is 0), `occluder-coffee` (a textured square slides over a
still background), `cut-astronaut-chelsea` (a pan, a hard cut, another pan) and
`pan-coffee-cartoon` (a flat-colour, outlined version of a photo: the anime-like case).
**warping error**: mean absolute difference (0-1) between each output frame and the previous
output frame moved by the *known* motion, over the pixels visible in both (Lai et al. 2018's
occlusion-masked warping error with the true motion). **detail** and **consistency** as above,
per frame; **detail end**: the detail of the last frame (does texture survive being carried?);
**cut leak**: mean absolute difference from the per-frame model on the frame after the cut (0:
the state was reset). `+ temporal`: the per-frame model's output through upres's temporal stage
with its default settings (DIS flow on the CPU), exactly as the pipeline runs it
(`StabilisedUpscaler`). realesrgan-x4plus runs on the pan, still and occluder clips only (it
costs seconds per frame here); realesr-animevideov3 on all of them.
"""
