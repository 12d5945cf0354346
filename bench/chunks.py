"""Chunks bench: what cutting a video into chunks costs, and what N workers gain.

Two measurements on the benchmark clips (a camera over photographs, AAC):

1. Overhead per chunk. A clip of ``--seconds`` (x264's default 10 s GOPs) is
   planned into chunks of ``--chunk-seconds`` (``cut_spans``: its packet
   index), each chunk is upscaled into a part by the real ``upscale_chunk``
   (bicubic, so this step stays quick: the join costs the same whatever made
   the parts), and the parts are joined (``join_chunks``: a remux with the
   source's audio). Planning and joining are timed (best of ``--repeats``)
   and scaled by frames to a 60 s chunk, against the model's time for that
   chunk (``--model`` at 2x on this CPU, best of three frames): the floor of
   what a chunk costs. The pre-roll (``DEFAULT_PRE_ROLL`` frames through the
   model per chunk, only with a stateful stage) is reported beside it.
2. End to end: ``upres upscale`` of a ``--e2e-seconds`` clip (2 s GOPs) with
   each of ``--workers`` (``--chunk-seconds`` ``--e2e-chunk-seconds``), wall
   time of the whole command (starting the workers and loading the model in
   each included).

    .venv/bin/python bench/chunks.py          # 32 s 360p; 16 s 128x72 with 1 and 2 workers
    .venv/bin/python bench/chunks.py --seconds 12 --chunk-seconds 5 --e2e-seconds 4 \\
        --e2e-chunk-seconds 2 --no-doc        # a quick look

Results go between the ``throughput:chunks`` markers of docs/BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

# Run as a script, the folder on sys.path is bench/; the harness imports itself as `bench`.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch
from bench import _report
from bench._clips import ClipSpec, make_clip, parse_size

from upres.domain.media import EncodeSettings, MediaLimits
from upres.domain.tasks import Factor
from upres.models.devices import resolve_device
from upres.models.registry import get_model
from upres.pipeline.chunks import DEFAULT_PRE_ROLL, cut_spans, join_chunks, upscale_chunk
from upres.pipeline.runtimes import build_upscaler, place
from upres.pipeline.upscale import InterpolationUpscaler
from upres.pipeline.video_run import VideoOptions

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DOC = ROOT / "docs" / "BENCHMARKS.md"
_FPS = 24
_PARTS = EncodeSettings(preset="ultrafast")
# The chunk length the overheads are scaled to, and the end-to-end clip's GOP (2 s).
_TARGET_S = 60
_E2E_GOP = 48


@dataclass(frozen=True, kw_only=True)
class Overhead:
    """What chunking one clip cost, in seconds, and the model's time per frame."""

    size: str
    seconds: float
    chunks: int
    frames: int
    plan_s: float
    join_s: float
    model_s_per_frame: float
    model: str

    def per_target(self, seconds: float) -> float:
        """``seconds`` (for the whole clip) scaled to one ``_TARGET_S`` chunk, by frames."""
        return seconds / self.frames * _TARGET_S * _FPS

    @property
    def target_s(self) -> float:
        """What a ``_TARGET_S`` chunk costs the model alone (a floor of its processing time)."""
        return _TARGET_S * _FPS * self.model_s_per_frame

    def share(self, seconds: float) -> float:
        return 100 * seconds / self.target_s


@dataclass(frozen=True, kw_only=True)
class EndToEnd:
    """``upres upscale`` of one clip with a number of workers (``threads``: torch's per
    process, None: the default, every core for one process)."""

    workers: int
    threads: int | None
    wall_s: float
    chunks: int


def best_of(repeats: int, work: Callable[[], object]) -> float:
    """The shortest of ``repeats`` timed runs of ``work``."""
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        work()
        times.append(time.perf_counter() - started)
    return min(times)


def overhead(
    folder: Path, *, size: str, seconds: float, chunk_seconds: float, model: str, repeats: int
) -> Overhead:
    width, height = parse_size(size)
    clip = make_clip(ClipSpec(width=width, height=height, frames=round(seconds * _FPS)), folder)
    spans = cut_spans(clip, chunk_seconds=chunk_seconds)
    plan_s = best_of(repeats, lambda: cut_spans(clip, chunk_seconds=chunk_seconds))
    parts = [
        upscale_chunk(
            source=clip,
            span=span,
            destination=folder / f"part-{span.index}.mp4",
            upscaler=InterpolationUpscaler(Factor.X2),
            options=VideoOptions(encode=_PARTS, limits=MediaLimits()),
        ).path
        for span in spans
    ]
    joined = folder / "joined.mp4"
    join_s = best_of(
        repeats,
        lambda: join_chunks(
            source=clip,
            parts=parts,
            destination=joined,
            options=VideoOptions(encode=_PARTS, limits=MediaLimits()),
        ),
    )
    return Overhead(
        size=size,
        seconds=seconds,
        chunks=len(spans),
        frames=sum(s.frame_count for s in spans),
        plan_s=plan_s,
        join_s=join_s,
        model_s_per_frame=_model_s_per_frame(model, width, height),
        model=model,
    )


def _model_s_per_frame(model: str, width: int, height: int) -> float:
    """The model at 2x on this CPU, best of three frames after a warm-up one."""
    spec = get_model(model)
    upscaler = build_upscaler(spec, Factor.X2, place(spec, resolve_device("cpu")))
    frame = torch.randint(0, 256, (1, height, width, 3), dtype=torch.uint8)
    upscaler.upscale(frame)
    return best_of(3, lambda: upscaler.upscale(frame))


def end_to_end(
    folder: Path,
    *,
    size: str,
    seconds: float,
    chunk_seconds: float,
    model: str,
    workers: int,
    threads: int | None = None,
) -> EndToEnd:
    width, height = parse_size(size)
    spec = ClipSpec(width=width, height=height, frames=round(seconds * _FPS), gop=_E2E_GOP)
    clip = make_clip(spec, folder)
    output = folder / f"e2e-{workers}.mp4"
    command = [sys.executable, "-c", "from upres.cli import main; main()", "upscale"]
    command += [str(clip), str(output), "--model", model, "--device", "cpu"]
    command += ["--workers", str(workers), "--chunk-seconds", str(chunk_seconds)]
    env = dict(os.environ)
    if threads is not None:
        env["UPRES_TORCH_THREADS"] = str(threads)
    started = time.perf_counter()
    done = subprocess.run(command, check=True, capture_output=True, text=True, env=env)
    wall = time.perf_counter() - started
    found = re.search(r" in (\d+) chunks", done.stdout)
    chunks = int(found.group(1)) if found else 1
    return EndToEnd(workers=workers, threads=threads, wall_s=wall, chunks=chunks)


def report(cost: Overhead, runs: Sequence[EndToEnd], e2e: str) -> str:
    planned = cost.plan_s + cost.join_s
    lines = [
        _report.describe(_report.machine(torch.device("cpu"))),
        "",
        f"Overhead: a {cost.seconds:g} s {cost.size} clip ({cost.frames} frames, x264's "
        f"10 s GOPs) planned and joined in {cost.chunks} chunks; each cost scaled by frames "
        f"to a {_TARGET_S} s chunk ({_TARGET_S * _FPS} frames at {_FPS} fps), against what "
        f"the model alone takes for it ({cost.model}, 2x, {cost.model_s_per_frame:.3f} s a "
        f"frame here: {cost.target_s:.0f} s).",
        "",
        f"| step | whole clip | per {_TARGET_S} s chunk | share of its model time |",
        "|---|---|---|---|",
    ]
    for step, seconds in (
        ("plan (packet index)", cost.plan_s),
        ("join (remux, audio)", cost.join_s),
        ("plan + join", planned),
    ):
        scaled = cost.per_target(seconds)
        lines.append(
            f"| {step} | {1000 * seconds:.1f} ms | {1000 * scaled:.1f} ms | "
            f"{cost.share(scaled):.4f} % |"
        )
    preroll = DEFAULT_PRE_ROLL * cost.model_s_per_frame
    lines += [
        f"| pre-roll ({DEFAULT_PRE_ROLL} frames; only with a stateful stage) | | "
        f"{preroll:.1f} s | {cost.share(preroll):.2f} % |",
        "",
        f"End to end: `upres upscale` of {e2e} ({cost.model}, 2x, temporal stage on), "
        "wall time of the command.",
        "",
        "| workers | torch threads per process | chunks | wall | speed-up |",
        "|---|---|---|---|---|",
    ]
    first = runs[0].wall_s
    lines += [
        f"| {r.workers} | {_threads(r)} | {r.chunks} | {r.wall_s:.1f} s | {first / r.wall_s:.2f}x |"
        for r in runs
    ]
    return "\n".join(lines)


def _threads(run: EndToEnd) -> str:
    if run.threads is not None:
        return f"{run.threads} (UPRES_TORCH_THREADS)"
    cores = os.cpu_count() or 1
    return f"{cores} (default)" if run.workers == 1 else f"{max(1, cores // run.workers)} (shared)"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size", default="360p")
    parser.add_argument("--seconds", type=float, default=32.0)
    parser.add_argument("--chunk-seconds", type=float, default=10.0)
    parser.add_argument("--model", default="realesr-animevideov3")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--e2e-size", default="128x72")
    parser.add_argument("--e2e-seconds", type=float, default=16.0)
    parser.add_argument("--e2e-chunk-seconds", type=float, default=4.0)
    parser.add_argument("--workers", default="1,2")
    parser.add_argument("--clips", type=Path, default=None, help="keep the clips in this folder")
    parser.add_argument("--doc", type=Path, default=DEFAULT_DOC)
    parser.add_argument("--no-doc", action="store_true")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as scratch:
        folder = args.clips or Path(scratch)
        cost = overhead(
            folder,
            size=args.size,
            seconds=args.seconds,
            chunk_seconds=args.chunk_seconds,
            model=args.model,
            repeats=args.repeats,
        )
        counts = [int(n) for n in args.workers.split(",")]
        # The peer of N workers sharing the cores: one process with as few threads as each.
        peer = max(1, (os.cpu_count() or 1) // max(counts))
        plans = [(n, None) for n in counts] + ([(1, peer)] if max(counts) > 1 else [])
        runs = [
            end_to_end(
                folder,
                size=args.e2e_size,
                seconds=args.e2e_seconds,
                chunk_seconds=args.e2e_chunk_seconds,
                model=args.model,
                workers=workers,
                threads=threads,
            )
            for workers, threads in plans
        ]
    text = report(cost, runs, f"a {args.e2e_seconds:g} s {args.e2e_size} clip")
    print(text)
    if not args.no_doc:
        _report.write_section(args.doc, "chunks", text)
    return 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    raise SystemExit(main())
