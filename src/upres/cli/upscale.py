"""``upres upscale INPUT OUTPUT``: upscale one local video file, no server needed.

Progress is a bar on a terminal and plain lines otherwise (logs, pipes).
Ctrl-C, SIGTERM and SIGHUP cancel cleanly: the half-written output is removed
and the exit status is 128 + the signal (130, 143, 129). Any upres error
prints one line on stderr and exits with 1.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Callable
from dataclasses import dataclass, replace
from enum import StrEnum
from functools import partial
from pathlib import Path
from types import FrameType
from typing import Annotated

import typer

from upres.cli._chunked import WorkerSetup, default_workers, upscale_chunked
from upres.cli._progress import plain_line, progress_reporter
from upres.cli._settings import settings_or_exit
from upres.cli._signals import exit_code, handling_stop_signals
from upres.config import Settings
from upres.domain.media import DEFAULT_CHUNK_SECONDS, EncodeSettings
from upres.domain.tasks import Factor
from upres.errors import Cancelled, InvalidRequest, UpresError
from upres.inputs.probe import probe
from upres.models.devices import NO_SLOTS, machine_gpu_slots, settings_device
from upres.models.registry import model_for
from upres.pipeline.chunks import ChunkSpan, cut_spans
from upres.pipeline.destination import check_destination
from upres.pipeline.engine import CancelToken, upscale_video
from upres.pipeline.runtimes import encoding_for
from upres.pipeline.video_run import VideoHooks, VideoOptions, VideoResult
from upres.worker_wiring import apply_torch_threads, upscalers

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
            "(default: one per GPU, those in UPRES_GPUS when it is set; else 1).",
        ),
    ] = None,
    chunk_seconds: Annotated[
        float,
        typer.Option(
            min=1e-3, help="About how much of the video a chunk covers with --workers > 1."
        ),
    ] = DEFAULT_CHUNK_SECONDS,
) -> None:
    """Upscale INPUT into OUTPUT, keeping audio, timing, rotation and colours."""
    if factor not in (1, 2, 4):
        raise typer.BadParameter("must be 1, 2 or 4", param_hint="--factor")
    stop = _StopOnSignal()
    with handling_stop_signals(stop):
        settings = settings_or_exit()
        apply_torch_threads(settings)
        chosen_device = (device or DeviceChoice(settings.device)).value
        chosen = {
            "model": model or settings.model,
            "device": chosen_device,
            "temporal": settings.temporal if temporal is None else temporal,
        }
        try:
            result = _run(
                input_path,
                output_path,
                _Choices(
                    factor=Factor(factor),
                    settings=settings.model_copy(update=chosen),
                    video=VideoOptions(
                        encode=_encode_settings(settings, codec=codec, crf=crf, preset=preset),
                        limits=settings.media_limits,
                        double_rate=(
                            settings.deinterlace_double_rate if double_rate is None else double_rate
                        ),
                    ),
                    workers=workers,
                    chunk_seconds=chunk_seconds,
                ),
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
    """What the command's options and the settings chose for this run: ``settings``
    carry the chosen model, device and temporal stage, as every upscaler is built
    from settings (``upscalers``)."""

    factor: Factor
    settings: Settings
    video: VideoOptions
    workers: int | None
    chunk_seconds: float


def _run(source: Path, destination: Path, choices: _Choices, *, cancel: CancelToken) -> VideoResult:
    """One pass, or with more than one worker (``choices.workers``, default one per
    GPU slot) and a video of several chunks, the chunks on that many processes.
    Raises UpresError (Cancelled once ``cancel`` fires)."""
    if source.resolve() == destination.resolve():
        raise InvalidRequest("OUTPUT must be a different file from INPUT.", param="output")
    check_destination(destination)
    settings = choices.settings
    spec = model_for(choices.factor, settings.model)
    target = settings_device(settings)
    options = replace(choices.video, encode=encoding_for(choices.video.encode, [spec], target))
    slots = NO_SLOTS if choices.workers == 1 else machine_gpu_slots(settings, target)
    workers = choices.workers or default_workers(slots)
    spans = _spans(source, options, choices.chunk_seconds) if workers > 1 else ()
    run: Callable[..., VideoResult]
    if len(spans) > 1:
        setup = WorkerSetup(
            settings=settings,
            factor=choices.factor,
            slots=slots,
            # Workers that compute on the CPU share its cores instead of each
            # taking all of them (on Vulkan the flow runs on the CPU).
            torch_threads=None if slots.on_cuda else max(1, (os.cpu_count() or 1) // workers),
        )
        run = partial(upscale_chunked, spans=spans, setup=setup, workers=min(workers, len(spans)))
    else:
        run = partial(upscale_video, upscaler=upscalers(settings)(choices.factor))
    cancel.raise_if_cancelled()
    with progress_reporter() as report:
        return run(
            source=source,
            destination=destination,
            options=options,
            hooks=VideoHooks(on_progress=report, cancel=cancel),
        )


def _spans(source: Path, options: VideoOptions, chunk_seconds: float) -> tuple[ChunkSpan, ...]:
    """The chunks ``source`` is cut into. Raises the MediaErrors of ``probe``."""
    probe(source, limits=options.limits)
    return cut_spans(source, chunk_seconds=chunk_seconds)


def _print_summary(result: VideoResult) -> None:
    fps = result.frames / result.elapsed_s if result.elapsed_s > 0 else 0.0
    chunks = f" in {result.chunks} chunks" if result.chunks > 1 else ""
    typer.echo(
        f"wrote {result.path}: {result.width}x{result.height}, {result.frames} frames, "
        f"{result.info.duration_s:.2f} s of video in {result.elapsed_s:.1f} s "
        f"({fps:.1f} fps){chunks}"
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
