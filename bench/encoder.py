"""Encoder bench: what writing the upscaled video costs on the CPU, per codec and preset.

An H100 has no NVENC, so whatever the GPU upscales, the CPU encodes; at 4K
output the encoder may become the bottleneck. This bench encodes the same
upscaled frames with each codec/preset through the engine's own ``encode()``
(RGB -> YUV conversion included) and reports wall speed, CPU seconds per
frame, video bit rate and fidelity: the luma PSNR of the decoded output against
the frames handed to the encoder. The frames are a benchmark clip upscaled by
a real model (``realesr-animevideov3`` by default), so the encoder sees a
network's texture rather than bicubic blur.

    .venv/bin/python bench/encoder.py   # 540p -> 2160p, 24 frames: x264 presets, x265, SVT-AV1
    .venv/bin/python bench/encoder.py --size 360p --frames 12 \\
        --configs h264:veryfast,h264:medium --threads 1 --no-doc

Results go between the ``throughput:encoder`` markers of docs/BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

# Run as a script, the folder on sys.path is bench/; the harness imports itself as `bench`.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import av
import torch
from bench import _report
from bench._cases import Clock, decode_options, resized, timed_batches
from bench._clips import ClipSpec, make_clip, parse_size

from upres.domain.media import EncodeSettings, MediaLimits, VideoCodec, VideoInfo
from upres.domain.tasks import Factor
from upres.inputs.probe import probe
from upres.models.registry import get_model
from upres.pipeline.colorimetry import conversion_for
from upres.pipeline.decode import TimedBatch
from upres.pipeline.encode import encode
from upres.pipeline.output_plan import plan_output
from upres.pipeline.upscale import InterpolationUpscaler, ModelUpscaler

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DOC = ROOT / "docs" / "BENCHMARKS.md"
DEFAULT_CONFIGS = (
    "h264:ultrafast,h264:superfast,h264:veryfast,h264:faster,h264:fast,h264:medium,h264:slow,"
    "h265:fast,av1:8"
)
_CODECS: tuple[VideoCodec, ...] = ("h264", "h265", "av1")
_SCALE = 4


@dataclass(frozen=True, kw_only=True)
class EncoderConfig:
    """One encoder setting to measure: codec, preset and thread count (0: the encoder's own)."""

    codec: VideoCodec
    preset: str
    threads: int


@dataclass(frozen=True, kw_only=True)
class EncoderResult:
    """What encoding ``frames`` frames with ``config`` cost and gave."""

    config: EncoderConfig
    frames: int
    seconds: float
    cpu_seconds: float
    video_bytes: int
    psnr_y_db: float


def parse_configs(text: str, threads: list[int]) -> list[EncoderConfig]:
    """``h264:medium,av1:8`` x thread counts -> configs.

    Raises ValueError for a codec upres does not write.
    """
    configs = []
    for item in text.split(","):
        codec, _, preset = item.partition(":")
        if codec not in _CODECS or not preset:
            raise ValueError(f"{item!r} is not <codec>:<preset> with codec in {_CODECS}")
        configs += [EncoderConfig(codec=codec, preset=preset, threads=t) for t in threads]
    return configs


def upscaled_frames(clip: Path, info: VideoInfo, source: str) -> list[TimedBatch]:
    """Every frame of ``clip``, upscaled 4x by model ``source`` (or plain bicubic)."""
    upscaler = (
        InterpolationUpscaler(Factor.X4)
        if source == "bicubic"
        else ModelUpscaler(get_model(source), Factor.X4, device="auto")
    )
    options = decode_options(info, 1, hardware=False)
    return [resized(batch, upscaler) for batch in timed_batches(clip, options)]


def measure(
    clip: Path, info: VideoInfo, frames: list[TimedBatch], config: EncoderConfig, folder: Path
) -> EncoderResult:
    """Encode ``frames`` with ``config`` through the engine's ``encode()`` and score the file."""
    settings = EncodeSettings(codec=config.codec, preset=config.preset, threads=config.threads)
    conversion = conversion_for(info.color, pix_fmt=info.pix_fmt, height=info.height)
    plan = plan_output(info, factor=_SCALE, conversion=conversion, settings=settings)
    target = folder / f"{config.codec}-{config.preset}-t{config.threads}.mp4"
    with Clock() as clock:
        encode(clip, target, iter(frames), plan=plan, on_batch=lambda _: None)
    return EncoderResult(
        config=config,
        frames=sum(batch.frames.count for batch in frames),
        seconds=clock.wall,
        cpu_seconds=clock.cpu,
        video_bytes=_video_bytes(target),
        psnr_y_db=_psnr_y(target, frames),
    )


def _video_bytes(path: Path) -> int:
    with av.open(str(path)) as container:
        return sum(packet.size for packet in container.demux(video=0))


def _psnr_y(path: Path, reference: list[TimedBatch]) -> float:
    """Luma PSNR (dB, 8-bit peak) of the decoded ``path`` against the frames that went in.

    Luma only: 4:2:0 output halves the chroma resolution whatever the preset,
    which would dominate an RGB PSNR (~43 dB for every preset).
    """
    info = probe(path, limits=MediaLimits())
    decoded = timed_batches(path, decode_options(info, 1, hardware=False))
    squared, count = 0.0, 0
    for got, want in zip(decoded, reference, strict=True):
        diff = _luma(got.frames.pixels) - _luma(want.frames.pixels)
        squared += float(diff.square().sum())
        count += diff.numel()
    return 10 * math.log10(255.0**2 / max(squared / count, 1e-12))


def _luma(rgb: torch.Tensor) -> torch.Tensor:
    """BT.709 luma of (N, H, W, 3) 8-bit RGB, as float64."""
    return rgb.double() @ torch.tensor([0.2126, 0.7152, 0.0722], dtype=torch.float64)


def table(results: list[EncoderResult], *, fps: float, cores: int) -> str:
    """Markdown rows; the last column assumes CPU time per frame stays as measured."""
    lines = [
        "| codec | preset | threads | fps | CPU s/frame | video Mbit/s | PSNR-Y dB "
        "| fps on 16 cores, if CPU-bound |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        threads = str(r.config.threads) if r.config.threads else f"auto ({cores} cores)"
        cpu_per_frame = r.cpu_seconds / r.frames
        mbits = r.video_bytes * 8 * fps / r.frames / 1e6
        cells = [r.config.codec, r.config.preset, threads, f"{r.frames / r.seconds:.2f}"]
        cells += [f"{cpu_per_frame:.3f}", f"{mbits:.1f}", f"{r.psnr_y_db:.2f}"]
        cells.append(f"{16 / cpu_per_frame:.1f}")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size", default="540p", help="input clip size (x4 = output)")
    parser.add_argument("--frames", type=int, default=24, help="frames in the clip")
    parser.add_argument("--source", default="realesr-animevideov3", help="model id or bicubic")
    parser.add_argument("--configs", default=DEFAULT_CONFIGS, help="codec:preset,...")
    parser.add_argument("--threads", default="1,0", help="encoder thread counts (0: auto)")
    parser.add_argument("--clips", type=Path, help="clip cache folder (default: a temp dir)")
    parser.add_argument("--doc", type=Path, default=DEFAULT_DOC, help="markdown file to update")
    parser.add_argument("--no-doc", action="store_true", help="do not write the markdown file")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    width, height = parse_size(args.size)
    configs = parse_configs(args.configs, [int(t) for t in args.threads.split(",")])
    machine = _report.machine(torch.device("cpu"))
    with tempfile.TemporaryDirectory(prefix="upres-bench-enc-") as scratch:
        clips = args.clips or Path(scratch)
        clip = make_clip(ClipSpec(width=width, height=height, frames=args.frames), clips)
        info = probe(clip, limits=MediaLimits())
        frames = upscaled_frames(clip, info, args.source)
        results = []
        for config in configs:
            print(f"  {config}", file=sys.stderr)
            results.append(measure(clip, info, frames, config, Path(scratch)))
    body = "\n".join(
        [
            _report.describe(machine),
            f"Input: {width}x{height}, {args.frames} frames at 24 fps, upscaled 4x by "
            f"{args.source} -> {width * _SCALE}x{height * _SCALE}.",
            "",
            table(results, fps=24.0, cores=os.cpu_count() or 0),
        ]
    )
    print(body)
    if not args.no_doc:
        _report.write_section(args.doc, "encoder", body)
        print(f"wrote {args.doc}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
