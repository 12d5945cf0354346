"""``upres upscale INPUT OUTPUT``: upscale one local video file, no server needed.

Progress is a bar on a terminal and plain lines otherwise (logs, pipes).
Ctrl-C, SIGTERM and SIGHUP cancel cleanly: the half-written output is removed
and the exit status is 128 + the signal (130, 143, 129). Any upres error
prints one line on stderr and exits with 1.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Sequence
from dataclasses import dataclass, replace
from enum import StrEnum
from pathlib import Path
from types import FrameType
from typing import Annotated

import typer

from upres.cli._chunked import WorkerSetup, cuda_gpus, default_workers, upscale_chunked
from upres.cli._progress import plain_line, progress_reporter
from upres.cli._settings import settings_or_exit
from upres.cli._signals import exit_code, handling_stop_signals
from upres.config import Settings
from upres.domain.framerate import UNCHANGED, FrameRateRequest, frame_rate_request
from upres.domain.media import DEFAULT_CHUNK_SECONDS, EncodeSettings
from upres.domain.tasks import Factor
from upres.errors import Cancelled, InvalidRequest, UpresError
from upres.inputs.probe import probe
from upres.models.registry import model_for
from upres.pipeline.chunks import ChunkSpan, plan_chunks
from upres.pipeline.destination import check_destination
from upres.pipeline.engine import CancelToken, upscale_video
from upres.pipeline.frames import FrameUpscaler
from upres.pipeline.runtimes import build_upscaler, encoding_for, place, resolve_device
from upres.worker_wiring import apply_torch_threads, frame_rate_stage, temporal_stage

__all__ = ["plain_line", "progress_reporter", "register", "upscale"]


class DeviceChoice(StrEnum):
    AUTO = "auto"
    CPU = "cpu"
    CUDA = "cuda"
    VULKAN = "vulkan"


class CodecChoice(StrEnum):
    H264 = "h264"
    H265 = "h265"
    AV1 = "av1"


def upscale(
    input_path: Annotated[Path, typer.Argument(metavar="INPUT", help="The video to upscale.")],
    output_path: Annotated[
        Path,
        typer.Argument(
            metavar="OUTPUT", help="Where to write the result: .mp4, .m4v, .mov or .mkv."
        ),
    ],
    *,
    factor: Annotated[int, typer.Option(help="Output size multiplier: 1, 2 or 4.")] = 2,
    model: Annotated[
        str | None,
        typer.Option(help="Model id (see `upres models list`); default UPRES_MODEL or per factor."),
    ] = None,
    device: Annotated[
        DeviceChoice | None,
        typer.Option(
            help="Where the model runs: auto (CUDA, else a Vulkan GPU, else the CPU), cpu, "
            "cuda, vulkan (default: UPRES_DEVICE)."
        ),
    ] = None,
    codec: Annotated[
        CodecChoice | None,
        typer.Option(
            help="Output video codec (default: UPRES_ENCODE_CODEC, else h264, or h265 10-bit "
            "for an HDR or deeper than 8-bit source)."
        ),
    ] = None,
    crf: Annotated[
        int | None,
        typer.Option(min=0, max=63, help="Quality (lower is better); default per codec."),
    ] = None,
    preset: Annotated[
        str | None,
        typer.Option(
            help="Encoder speed: x264/x265 ultrafast..placebo, AV1 0-13; default per codec "
            "(x264: medium, veryfast for a fast model on a GPU)."
        ),
    ] = None,
    temporal: Annotated[
        bool | None,
        typer.Option(
            "--temporal/--no-temporal",
            help="Motion-compensated temporal stabilisation (default: UPRES_TEMPORAL, on); "
            "--no-temporal gives the raw per-frame output.",
        ),
    ] = None,
    double_rate: Annotated[
        bool | None,
        typer.Option(
            "--double-rate/--single-rate",
            help="Deinterlace an interlaced input to one frame per field (50i -> 50p) "
            "instead of one per frame (default: UPRES_DEINTERLACE_DOUBLE_RATE).",
        ),
    ] = None,
    workers: Annotated[
        int | None,
        typer.Option(
            min=1,
            help="Worker processes for this video: more than 1 cuts it into chunks on "
            "keyframes that run at once and are joined without re-encoding "
            "(default: one per CUDA GPU, else 1).",
        ),
    ] = None,
    chunk_seconds: Annotated[
        float,
        typer.Option(
            min=1e-3, help="About how much of the video a chunk covers with --workers > 1."
        ),
    ] = DEFAULT_CHUNK_SECONDS,
    fps: Annotated[
        float | None,
        typer.Option(
            "--fps",
            help="Output frame rate: new frames are synthesised by motion interpolation "
            "(RIFE). At least the source's rate (divided by --slowmo), at most 120.",
        ),
    ] = None,
    slowmo: Annotated[
        int,
        typer.Option(
            help="Slow motion: 1, 2, 4 or 8 times slower, at the source's rate unless --fps "
            "says otherwise. The audio and subtitles are left out.",
        ),
    ] = 1,
) -> None:
    """Upscale INPUT into OUTPUT, keeping audio, timing, rotation and colours."""
    if factor not in (1, 2, 4):
        raise typer.BadParameter("must be 1, 2 or 4", param_hint="--factor")
    stop = _StopOnSignal()
    with handling_stop_signals(stop):
        settings = settings_or_exit()
        apply_torch_threads(settings)
        chosen_device = (device or DeviceChoice(settings.device)).value
        try:
            request = frame_rate_request(fps=fps, slowmo=slowmo)
            result = _run(
                input_path,
                output_path,
                _Choices(
                    factor=Factor(factor),
                    model=model or settings.model,
                    device=chosen_device,
                    encode=_encode_settings(settings, codec=codec, crf=crf, preset=preset),
                    double_rate=(
                        settings.deinterlace_double_rate if double_rate is None else double_rate
                    ),
                    temporal=settings.temporal if temporal is None else temporal,
                    workers=workers or default_workers(chosen_device),
                    chunk_seconds=chunk_seconds,
                    frame_rate=request,
                ),
                settings=settings,
                cancel=stop.cancel,
            )
        except (Cancelled, KeyboardInterrupt) as exc:
            typer.echo("cancelled: no output was written", err=True)
            raise typer.Exit(exit_code(stop.signum)) from exc
        except UpresError as exc:
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(1) from exc
    _print_summary(result)


class _StopOnSignal:
    """The first stop signal fires ``cancel``; a second one interrupts at once."""

    def __init__(self) -> None:
        self.cancel = CancelToken()
        self.signum = int(signal.SIGINT)

    def __call__(self, signum: int, frame: FrameType | None) -> None:
        if self.cancel.is_cancelled:
            raise KeyboardInterrupt
        self.signum = signum
        self.cancel.cancel()
        typer.echo("\ncancelling...", err=True)


def _encode_settings(
    settings: Settings, *, codec: CodecChoice | None, crf: int | None, preset: str | None
) -> EncodeSettings:
    """The command's options over the ``UPRES_ENCODE_*`` settings.

    Raises InvalidRequest when the preset or crf does not suit the codec.
    """
    base = settings.encode_settings
    return replace(
        base,
        codec=codec.value if codec is not None else base.codec,
        crf=crf if crf is not None else base.crf,
        preset=preset if preset is not None else base.preset,
    )


@dataclass(frozen=True, kw_only=True)
class _Choices:
    """What the command's options and the settings chose for this run."""

    factor: Factor
    model: str | None
    device: str
    encode: EncodeSettings
    double_rate: bool
    temporal: bool
    workers: int
    chunk_seconds: float
    frame_rate: FrameRateRequest = UNCHANGED


@dataclass(frozen=True, kw_only=True)
class _Summary:
    """What the command reports once the output is written."""

    path: Path
    width: int
    height: int
    frames: int
    duration_s: float
    elapsed_s: float
    skipped_packets: int
    concealed_frames: int
    notes: tuple[str, ...]
    dropped_streams: tuple[str, ...]
    chunks: int = 1


def _run(
    source: Path, destination: Path, choices: _Choices, *, settings: Settings, cancel: CancelToken
) -> _Summary:
    """One pass, or with ``choices.workers`` > 1 and a video of several chunks, the
    chunks on that many processes. Raises UpresError (Cancelled once ``cancel`` fires)."""
    if source.resolve() == destination.resolve():
        raise InvalidRequest("OUTPUT must be a different file from INPUT.", param="output")
    check_destination(destination)
    if choices.frame_rate.retimes:
        info = probe(source, limits=settings.media_limits)
        request = choices.frame_rate
        frame_rate_request(fps=request.fps, slowmo=request.slowmo, source_fps=info.average_fps)
    spec = model_for(choices.factor, choices.model)
    target = resolve_device(choices.device, vulkan=settings.vulkan_device)
    where = place(spec, target)
    encode = encoding_for(choices.encode, [spec], target)
    if choices.workers > 1:
        probe(source, limits=settings.media_limits)
        spans = plan_chunks(source, chunk_seconds=choices.chunk_seconds)
        if len(spans) > 1:
            cancel.raise_if_cancelled()
            return _run_chunked(
                source,
                destination,
                choices=choices,
                spans=spans,
                model=spec.id,
                settings=settings,
                encode=encode,
                cancel=cancel,
            )
    network = build_upscaler(spec, choices.factor, where)
    stage = temporal_stage(settings, where.torch_device, enabled=choices.temporal)
    upscaler: FrameUpscaler = network if stage is None else stage.wrap(network)
    chosen = settings.model_copy(update={"model": spec.id, "device": choices.device})
    frame_rate = frame_rate_stage(chosen, choices.frame_rate, choices.factor)
    cancel.raise_if_cancelled()
    with progress_reporter() as report:
        result = upscale_video(
            source=source,
            destination=destination,
            upscaler=upscaler,
            encode=encode,
            limits=settings.media_limits,
            on_progress=report,
            cancel=cancel,
            double_rate=choices.double_rate,
            frame_rate=frame_rate,
        )
    return _Summary(
        path=result.path,
        width=result.width,
        height=result.height,
        frames=result.frames,
        duration_s=result.info.duration_s,
        elapsed_s=result.elapsed_s,
        skipped_packets=result.skipped_packets,
        concealed_frames=result.concealed_frames,
        notes=result.notes,
        dropped_streams=result.dropped_streams,
    )


def _run_chunked(
    source: Path,
    destination: Path,
    *,
    choices: _Choices,
    spans: Sequence[ChunkSpan],
    model: str,
    settings: Settings,
    encode: EncodeSettings,
    cancel: CancelToken,
) -> _Summary:
    chosen = {"model": model, "device": choices.device, "temporal": choices.temporal}
    gpus = cuda_gpus(choices.device)
    setup = WorkerSetup(
        settings=settings.model_copy(update=chosen),
        factor=choices.factor,
        gpus=gpus,
        # On the CPU the workers share its cores instead of each taking all of them.
        torch_threads=None if gpus else max(1, (os.cpu_count() or 1) // choices.workers),
    )
    with progress_reporter() as report:
        result = upscale_chunked(
            source=source,
            destination=destination,
            spans=spans,
            setup=setup,
            workers=min(choices.workers, len(spans)),
            encode=encode,
            double_rate=choices.double_rate,
            cancel=cancel,
            on_progress=report,
            frame_rate=choices.frame_rate,
        )
    joined = result.joined
    return _Summary(
        path=joined.path,
        width=joined.width,
        height=joined.height,
        frames=joined.frames,
        duration_s=joined.info.duration_s,
        elapsed_s=result.elapsed_s,
        skipped_packets=result.skipped_packets,
        concealed_frames=result.concealed_frames,
        notes=joined.notes,
        dropped_streams=joined.dropped_streams,
        chunks=len(spans),
    )


def _print_summary(result: _Summary) -> None:
    fps = result.frames / result.elapsed_s if result.elapsed_s > 0 else 0.0
    chunks = f" in {result.chunks} chunks" if result.chunks > 1 else ""
    typer.echo(
        f"wrote {result.path}: {result.width}x{result.height}, {result.frames} frames, "
        f"{result.duration_s:.2f} s of video in {result.elapsed_s:.1f} s ({fps:.1f} fps){chunks}"
    )
    if result.skipped_packets or result.concealed_frames:
        typer.echo(
            f"warning: the input is damaged: {result.skipped_packets} video packets skipped, "
            f"{result.concealed_frames} frames repaired by the decoder",
            err=True,
        )
    for note in result.notes:
        typer.echo(f"note: {note}", err=True)
    for stream in result.dropped_streams:
        typer.echo(f"warning: left out {stream}", err=True)


def register(app: typer.Typer) -> None:
    """Add the ``upscale`` command to ``app``."""
    app.command("upscale")(upscale)
