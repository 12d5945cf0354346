"""``upres upscale INPUT OUTPUT``: upscale one local video file, no server needed.

Progress is a bar on a terminal and plain lines otherwise (logs, pipes).
Ctrl-C, SIGTERM and SIGHUP cancel cleanly: the half-written output is removed
and the exit status is 128 + the signal (130, 143, 129). Any upres error
prints one line on stderr and exits with 1.
"""

from __future__ import annotations

import signal
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import replace
from enum import StrEnum
from pathlib import Path
from types import FrameType
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.progress import Progress as ProgressBar

from upres.cli._settings import settings_or_exit
from upres.cli._signals import exit_code, handling_stop_signals
from upres.config import Settings
from upres.domain.media import EncodeSettings
from upres.domain.tasks import Factor
from upres.errors import Cancelled, InvalidRequest, UpresError
from upres.models.registry import model_for
from upres.pipeline.destination import check_destination
from upres.pipeline.engine import CancelToken, Progress, UpscaleResult, upscale_video
from upres.pipeline.frames import FrameUpscaler
from upres.pipeline.runtimes import build_upscaler, encoding_for, place, resolve_device
from upres.wiring import apply_torch_threads, temporal_stage

_PLAIN_INTERVAL_S = 2.0


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
) -> None:
    """Upscale INPUT into OUTPUT, keeping audio, timing, rotation and colours."""
    if factor not in (1, 2, 4):
        raise typer.BadParameter("must be 1, 2 or 4", param_hint="--factor")
    stop = _StopOnSignal()
    with handling_stop_signals(stop):
        settings = settings_or_exit()
        apply_torch_threads(settings)
        try:
            result = _run(
                input_path,
                output_path,
                factor=Factor(factor),
                model=model or settings.model,
                device=(device or DeviceChoice(settings.device)).value,
                encode=_encode_settings(settings, codec=codec, crf=crf, preset=preset),
                settings=settings,
                double_rate=(
                    settings.deinterlace_double_rate if double_rate is None else double_rate
                ),
                cancel=stop.cancel,
                temporal=temporal,
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


def _run(
    source: Path,
    destination: Path,
    *,
    factor: Factor,
    model: str | None,
    device: str,
    encode: EncodeSettings,
    settings: Settings,
    double_rate: bool,
    cancel: CancelToken,
    temporal: bool | None,
) -> UpscaleResult:
    """Raises UpresError (Cancelled once ``cancel`` fires)."""
    if source.resolve() == destination.resolve():
        raise InvalidRequest("OUTPUT must be a different file from INPUT.", param="output")
    check_destination(destination)
    spec = model_for(factor, model)
    target = resolve_device(device, vulkan=settings.vulkan_device)
    where = place(spec, target)
    network = build_upscaler(spec, factor, where)
    stage = temporal_stage(settings, where.torch_device, enabled=temporal)
    upscaler: FrameUpscaler = network if stage is None else stage.wrap(network)
    cancel.raise_if_cancelled()
    encode = encoding_for(encode, [spec], target)
    with progress_reporter() as report:
        return upscale_video(
            source=source,
            destination=destination,
            upscaler=upscaler,
            encode=encode,
            limits=settings.media_limits,
            on_progress=report,
            cancel=cancel,
            double_rate=double_rate,
        )


@contextmanager
def progress_reporter() -> Iterator[Callable[[Progress], None]]:
    """A rich bar on a terminal, else a plain line every few seconds (on stderr)."""
    if not sys.stderr.isatty():
        yield _plain_reporter()
        return
    columns = (
        TextColumn("upscaling"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("frames {task.fields[fps]:.1f} fps"),
        TimeElapsedColumn(),
        TextColumn("ETA"),
        TimeRemainingColumn(),
    )
    with ProgressBar(*columns, console=Console(stderr=True), transient=True) as bar:
        task = bar.add_task("upscale", total=None, fps=0.0)

        def report(progress: Progress) -> None:
            bar.update(
                task,
                completed=progress.frames_done,
                total=_total(progress),
                fps=progress.fps,
            )

        yield report


def _plain_reporter() -> Callable[[Progress], None]:
    last = 0.0

    def report(progress: Progress) -> None:
        nonlocal last
        now = time.monotonic()
        finished = progress.frames_done == progress.frames_total
        if now - last < _PLAIN_INTERVAL_S and not finished:
            return
        last = now
        typer.echo(plain_line(progress), err=True)

    return report


def plain_line(progress: Progress) -> str:
    """One progress line for logs: ``frames 12/48 (25%) 3.1 fps ETA 12s``."""
    total = _total(progress)
    if total is None:
        return f"frames {progress.frames_done} {progress.fps:.1f} fps"
    percent = 100 * progress.frames_done / total
    eta = (total - progress.frames_done) / progress.fps if progress.fps > 0 else 0.0
    return (
        f"frames {progress.frames_done}/{total} ({percent:.0f}%) "
        f"{progress.fps:.1f} fps ETA {eta:.0f}s"
    )


def _total(progress: Progress) -> int | None:
    """The estimate, never below what is already done."""
    if progress.frames_total is None:
        return None
    return max(progress.frames_total, progress.frames_done)


def _print_summary(result: UpscaleResult) -> None:
    fps = result.frames / result.elapsed_s if result.elapsed_s > 0 else 0.0
    typer.echo(
        f"wrote {result.path}: {result.width}x{result.height}, {result.frames} frames, "
        f"{result.info.duration_s:.2f} s of video in {result.elapsed_s:.1f} s ({fps:.1f} fps)"
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
