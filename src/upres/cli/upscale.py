"""``upres upscale INPUT OUTPUT``: upscale one local video file, no server needed
(``SOURCE... OUTPUT_DIR``, the batch, is ``upres.cli.local_batch``).

Progress is a bar on a terminal and plain lines otherwise (logs, pipes).
Ctrl-C, SIGTERM and SIGHUP cancel cleanly: the half-written output is removed
and the exit status is 128 + the signal (130, 143, 129). Any upres error
prints one line on stderr and exits as ``upres.cli._exits`` says (1, or 2 for
a configuration error).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import replace
from enum import StrEnum
from functools import partial
from pathlib import Path
from typing import Annotated

import typer

from upres.cli._chunked import WorkerSetup, default_workers, upscale_chunked
from upres.cli._exits import fail, stopped_by
from upres.cli._progress import plain_line, progress_reporter
from upres.cli._settings import setting_default, settings_or_exit
from upres.cli._signals import handling_stop_signals
from upres.cli._stop import StopOnSignal
from upres.cli.batch import BatchTarget, ContainerChoice, single_file_form
from upres.cli.choices import Choices, Options, RunOptions, choose, video_codec
from upres.config import Settings
from upres.domain.framerate import frame_rate_request
from upres.domain.media import DEFAULT_CHUNK_SECONDS
from upres.errors import Cancelled, InvalidRequest, UpresError
from upres.inputs.probe import probe
from upres.models.devices import NO_SLOTS, machine_gpu_slots, settings_device
from upres.models.registry import model_for
from upres.pipeline.chunks import ChunkSpan, cut_spans
from upres.pipeline.destination import check_destination
from upres.pipeline.engine import CancelToken, upscale_video
from upres.pipeline.runtimes import encoding_for
from upres.pipeline.video_run import Progress, VideoHooks, VideoOptions, VideoResult
from upres.worker_wiring import apply_torch_threads, frame_rate_stage, upscalers

__all__ = ["plain_line", "progress_reporter", "register", "upscale"]

# How run_file shows a file's frames: a context that gives the callback.
ProgressDisplay = Callable[[], AbstractContextManager[Callable[[Progress], None]]]


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
    paths: Annotated[
        list[str],
        typer.Argument(
            metavar="INPUT OUTPUT | SOURCE... OUTPUT_DIR",
            help="One video and the file to write (.mp4, .m4v, .mov or .mkv), or videos, "
            "folders and globs and the folder to write into (see `upres upscale` in the README).",
        ),
    ],
    *,
    factor: Annotated[
        int | None,
        typer.Option(
            help="How many times wider and taller the output is: 2 (default) or 4, or 1 to "
            "keep the size and only restore detail."
        ),
    ] = None,
    model: Annotated[
        str | None,
        typer.Option(
            help="The model to run, an id from upres models list "
            f"({setting_default('model', 'the best model for --factor')})."
        ),
    ] = None,
    denoise: Annotated[
        int | None,
        typer.Option(help="Denoise level, for a model that has levels (see `upres models list`)."),
    ] = None,
    device: Annotated[
        DeviceChoice | None,
        typer.Option(
            help="Where the model runs: auto (a CUDA GPU, else a Vulkan GPU, else the CPU), "
            f"cpu, cuda or vulkan ({setting_default('device')})."
        ),
    ] = None,
    codec: Annotated[
        CodecChoice | None,
        typer.Option(
            help="Video codec of the output (default: UPRES_ENCODE_CODEC, else h264, or "
            "10-bit h265 for an HDR or deeper than 8-bit source)."
        ),
    ] = None,
    crf: Annotated[
        int | None,
        typer.Option(
            min=0,
            max=63,
            help="Output quality: lower is better and larger, up to 51 for h264 and h265 "
            "(default: UPRES_ENCODE_CRF, else 18 for h264, 20 for h265, 28 for av1).",
        ),
    ] = None,
    preset: Annotated[
        str | None,
        typer.Option(
            help="Encoder speed against file size: ultrafast ... placebo for h264 and h265, "
            "13 (fastest) ... 0 for av1 (default: UPRES_ENCODE_PRESET, else medium for h264, "
            "veryfast when a fast model runs on a GPU, fast for h265, 8 for av1)."
        ),
    ] = None,
    temporal: Annotated[
        bool | None,
        typer.Option(
            "--temporal/--no-temporal",
            help="Steady the model's output from frame to frame so fine detail does not "
            "flicker; --no-temporal keeps each frame as the model made it "
            "(default: UPRES_TEMPORAL, else on).",
        ),
    ] = None,
    double_rate: Annotated[
        bool | None,
        typer.Option(
            "--double-rate/--single-rate",
            help="For an interlaced input: one output frame per field (50i becomes 50p), "
            "or with --single-rate one per frame (default: UPRES_DEINTERLACE_DOUBLE_RATE, "
            "else --single-rate).",
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
        float | None,
        typer.Option(
            min=1e-3,
            help="About how many seconds of video each chunk covers with --workers > 1 "
            f"(default: UPRES_CHUNK_SECONDS, else {DEFAULT_CHUNK_SECONDS:g}).",
        ),
    ] = None,
    container: Annotated[
        ContainerChoice | None,
        typer.Option(help="With OUTPUT_DIR: the outputs' container, mp4 (default) or mkv."),
    ] = None,
    overwrite: Annotated[
        bool,
        typer.Option(
            "--overwrite", help="With OUTPUT_DIR: replace outputs that upres did not write."
        ),
    ] = False,
    json_lines: Annotated[
        bool, typer.Option("--json", help="With OUTPUT_DIR: one JSON line per file on stdout.")
    ] = False,
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
    """Upscale INPUT into OUTPUT, keeping audio, timing, rotation and colours; or every
    video of the SOURCEs into OUTPUT_DIR."""
    if factor not in (None, 1, 2, 4):
        raise typer.BadParameter("must be 1, 2 or 4", param_hint="--factor")
    options = Options(
        factor=factor,
        model=model,
        codec=video_codec(codec.value) if codec is not None else None,
        crf=crf,
        preset=preset,
        temporal=temporal,
        double_rate=double_rate,
        denoise=denoise,
    )
    run = RunOptions(
        device=device.value if device else None, workers=workers, chunk_seconds=chunk_seconds
    )
    if not single_file_form(paths):
        if fps is not None or slowmo != 1:
            raise typer.BadParameter("--fps and --slowmo take one INPUT and its OUTPUT")
        # Imported here: the batch runs this module's run_file, file by file.
        from upres.cli.local_batch import upscale_batch  # noqa: PLC0415

        target = BatchTarget(container=container, overwrite=overwrite, json_lines=json_lines)
        raise typer.Exit(upscale_batch(paths, options, run, target))
    if container is not None or overwrite or json_lines:
        raise typer.BadParameter("--container, --overwrite and --json need an OUTPUT_DIR")
    input_path, output_path = (Path(p) for p in paths)
    if input_path.is_dir():
        raise typer.BadParameter(
            f"{input_path} is a folder: give a folder to write into (for example "
            f"{output_path.with_suffix('')}/)"
        )
    stop = StopOnSignal()
    with handling_stop_signals(stop):
        settings = settings_or_exit()
        apply_torch_threads(settings)
        try:
            result = run_file(
                input_path,
                output_path,
                replace(
                    choose(options, run, settings),
                    frame_rate=frame_rate_request(fps=fps, slowmo=slowmo),
                ),
                settings=settings,
                cancel=stop.cancel,
            )
        except (Cancelled, KeyboardInterrupt) as exc:
            typer.echo("cancelled: no output was written", err=True)
            raise typer.Exit(stopped_by(stop.signum)) from exc
        except UpresError as exc:
            fail(exc)
    _print_summary(result)


def run_file(
    source: Path,
    destination: Path,
    choices: Choices,
    *,
    settings: Settings,
    cancel: CancelToken,
    display: ProgressDisplay = progress_reporter,
    parts: Callable[[], Path] | None = None,
) -> VideoResult:
    """One pass, or with more than one worker (``choices.workers``, default one per
    GPU slot) and a video of several chunks, the chunks on that many processes
    (their parts in the folder ``parts`` gives, asked only then, kept there across
    an interruption: ``upscale_chunked``); ``display`` shows the frames. Every
    upscaler is built from settings (``upscalers``), so the chosen model, device and
    temporal stage travel in them. Raises UpresError (Cancelled once ``cancel`` fires)."""
    if source.resolve() == destination.resolve():
        raise InvalidRequest("OUTPUT must be a different file from INPUT.", param="output")
    check_destination(destination)
    if choices.frame_rate.retimes:
        request = choices.frame_rate
        info = probe(source, limits=settings.media_limits)
        frame_rate_request(fps=request.fps, slowmo=request.slowmo, source_fps=info.average_fps)
    chosen = {"model": choices.model, "device": choices.device, "temporal": choices.temporal}
    settings = settings.model_copy(update=chosen)
    spec = model_for(choices.factor, settings.model, choices.denoise)
    target = settings_device(settings)
    options = VideoOptions(
        encode=encoding_for(choices.encode, [spec], target),
        limits=settings.media_limits,
        double_rate=choices.double_rate,
        frame_rate=frame_rate_stage(
            settings, choices.frame_rate, choices.factor, network=spec.id, denoise=choices.denoise
        ),
    )
    slots = NO_SLOTS if choices.workers == 1 else machine_gpu_slots(settings, target)
    workers = choices.workers or default_workers(slots)
    spans = _spans(source, options, choices.chunk_seconds) if workers > 1 else ()
    run: Callable[..., VideoResult]
    if len(spans) > 1:
        setup = WorkerSetup(
            settings=settings,
            factor=choices.factor,
            denoise=choices.denoise,
            slots=slots,
            # Workers that compute on the CPU share its cores instead of each
            # taking all of them (on Vulkan the flow runs on the CPU).
            torch_threads=None if slots.on_cuda else max(1, (os.cpu_count() or 1) // workers),
        )
        run = partial(
            upscale_chunked,
            spans=spans,
            setup=setup,
            workers=min(workers, len(spans)),
            parts=parts() if parts is not None else None,
        )
    else:
        upscaler = upscalers(settings)(choices.factor, denoise=choices.denoise)
        run = partial(upscale_video, upscaler=upscaler)
    cancel.raise_if_cancelled()
    with display() as report:
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
