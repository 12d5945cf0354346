"""The engine: one video in, one upscaled video out.

    probe -> decode (thread) -> [queue] -> upscale (thread) -> [queue] -> encode (caller's thread)

The stages run as ``upres.pipeline.stages`` describes (bounded queues, the
first error stops all of them). The output is written to a hidden temporary
name beside ``destination`` and renamed only on success. ``prepare`` and
``run_job`` are shared with the chunked mode (``upres.pipeline.chunks``),
which runs the same stages over a window of the frames into a part.
"""

from __future__ import annotations

import os
import queue
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import closing
from dataclasses import dataclass, replace
from pathlib import Path

import torch

from upres.domain.framerate import UNCHANGED, FrameRateRequest
from upres.domain.media import EncodeSettings, VideoInfo, frame_total
from upres.errors import EncodeError, InvalidRequest, ModelError
from upres.inputs.probe import InputSource, probe
from upres.pipeline.colorimetry import conversion_for
from upres.pipeline.completeness import check_complete
from upres.pipeline.decode import DecodeOptions, DecodeSummary, TimedBatch, decode
from upres.pipeline.destination import check_destination
from upres.pipeline.encode import encode
from upres.pipeline.fields import (
    Deinterlace,
    FieldScan,
    deinterlace_for,
    field_notes,
    scan_fields,
)
from upres.pipeline.frames import FrameBatch, FrameUpscaler
from upres.pipeline.interpolate import FrameRateStage, Retiming, retimed_plan
from upres.pipeline.output_plan import OutputPlan, plan_output
from upres.pipeline.stages import END, QUEUE_BATCHES, CancelToken, Run, StoppedError
from upres.pipeline.video_run import NO_HOOKS, Progress, VideoHooks, VideoOptions, VideoResult
from upres.pipeline.window import WHOLE, FrameWindow

_PART_CONTAINER = "mp4"


def upscale_video(
    *,
    source: Path,
    destination: Path,
    upscaler: FrameUpscaler,
    options: VideoOptions,
    hooks: VideoHooks = NO_HOOKS,
) -> VideoResult:
    """Upscale ``source`` into ``destination`` (mp4, or Matroska for .mkv) with ``upscaler``.

    An interlaced source is deinterlaced (``options.double_rate``: one frame
    per field). Raises InvalidRequest before any work when ``destination``
    cannot be written (``check_destination``), the MediaError subclasses of
    ``probe``, ``check_complete`` and ``decode``, ModelError, EncodeError,
    Cancelled, or whatever ``hooks.on_progress`` raises; on any error no file
    exists under ``destination`` and no temporary file is left.
    """
    started = time.monotonic()
    job = prepare(
        source=source, destination=destination, upscaler=upscaler, options=options, hooks=hooks
    )
    return run_job(job, started=started)


@dataclass(frozen=True, kw_only=True)
class Job:
    """The inputs of the stages of one run: the whole video, or a window of it into a part.

    ``frames_total`` is the progress estimate (None when unknown).
    """

    source: InputSource
    destination: Path
    temp: Path
    upscaler: FrameUpscaler
    decoding: DecodeOptions
    plan: OutputPlan
    container: str
    info: VideoInfo
    fields: FieldScan
    window: FrameWindow
    part: bool
    frames_total: int | None
    hooks: VideoHooks
    frame_rate: FrameRateStage | None = None
    retiming: Retiming | None = None

    @property
    def notes(self) -> tuple[str, ...]:
        """What upres decided for the user: the plan's notes, then deinterlacing's."""
        return self.plan.notes + field_notes(self.fields, self.decoding.deinterlace)


def prepare(
    *,
    source: InputSource,
    destination: Path,
    upscaler: FrameUpscaler,
    options: VideoOptions,
    hooks: VideoHooks = NO_HOOKS,
    window: FrameWindow = WHOLE,
    part: bool = False,
    window_frames: int | None = None,
    frame_rate: FrameRateStage | None = None,
) -> Job:
    """Check the destination, probe the source, check it is whole, and decide how to
    decode and encode it (``window_frames``: how many source frames ``window`` holds).

    A ``part`` skips the completeness check, which reads the whole file:
    ``cut_spans`` made it once for all the chunks.
    Raises InvalidRequest (a ``part`` must be an .mp4 name) and what ``probe``,
    ``check_complete`` and ``plan_output`` raise; writes nothing.
    """
    container = check_destination(destination)
    if part and container != _PART_CONTAINER:
        raise InvalidRequest(f"A chunk's part must be an .mp4 file, not {destination.name}.")
    info = probe(source, limits=options.limits)
    if not part:
        check_complete(source)
    request = options.frame_rate_request
    output = decide(
        source,
        info,
        factor=upscaler.factor,
        settings=options.encode,
        double_rate=options.double_rate,
        frame_rate=request,
    )
    hardware = options.hardware_decode
    decoding = DecodeOptions.for_video(
        info,
        batch_size=max(1, upscaler.batch_size),
        hardware=torch.cuda.is_available() if hardware is None else hardware,
        deinterlace=output.deinterlace,
    )
    frames = (
        window_frames
        if window_frames is not None
        else frame_total(info.frame_count, info.duration_s, info.average_fps)
    )
    if frames is not None and output.retiming is not None and info.average_fps:
        frames = output.retiming.frames_for(frames, info.average_fps)
    elif frames is not None:
        frames *= output.plan.rate
    if output.retiming is not None and window.end is not None:
        window = replace(window, lookahead=1)  # synthesise up to the next chunk's first frame
    return Job(
        source=source,
        destination=destination,
        temp=temp_beside(destination),
        upscaler=upscaler,
        decoding=decoding,
        plan=output.plan,
        container=container,
        info=info,
        fields=output.fields,
        window=window,
        part=part,
        frames_total=frames,
        hooks=hooks,
        frame_rate=options.frame_rate if output.retiming is not None else None,
        retiming=output.retiming,
    )


@dataclass(frozen=True, kw_only=True)
class OutputDecision:
    """How a source is deinterlaced and written (``notes`` for the user), and the
    frame-rate stage's grid (None: the source's timing)."""

    fields: FieldScan
    deinterlace: Deinterlace | None
    plan: OutputPlan
    retiming: Retiming | None = None

    @property
    def notes(self) -> tuple[str, ...]:
        return self.plan.notes + field_notes(self.fields, self.deinterlace)


def decide(
    source: InputSource,
    info: VideoInfo,
    *,
    factor: int,
    settings: EncodeSettings,
    double_rate: bool,
    frame_rate: FrameRateRequest = UNCHANGED,
) -> OutputDecision:
    """Scan ``source``'s fields and plan its output ``factor`` times larger, at ``frame_rate``.

    Raises CorruptVideo from the field scan, EncodeError from ``plan_output``,
    InvalidRequest when ``frame_rate`` does not suit the source (``frame_rate_request``).
    """
    fields = scan_fields(source)
    deinterlace = deinterlace_for(fields, double_rate=double_rate)
    conversion = conversion_for(info.color, pix_fmt=info.pix_fmt, height=info.height)
    rate = deinterlace.rate if deinterlace is not None else 1
    plan = plan_output(info, factor=factor, conversion=conversion, settings=settings, rate=rate)
    plan, timing = retimed_plan(source, info, plan, frame_rate, rate=rate)
    return OutputDecision(fields=fields, deinterlace=deinterlace, plan=plan, retiming=timing)


def temp_beside(destination: Path) -> Path:
    """A hidden, unique name beside ``destination`` to write it under until it is whole."""
    return destination.with_name(f".{destination.name}.{uuid.uuid4().hex[:12]}.tmp")


def run_job(job: Job, *, started: float) -> VideoResult:
    """Run the stages of ``job`` and move its output into place under ``job.destination``.

    Raises what the stages raise (Cancelled once ``job.hooks.cancel`` fires);
    on any error no file exists under the destination and no temporary file is left.
    """
    run = Run(cancel=job.hooks.cancel or CancelToken(), started=started)
    try:
        dropped, summary = _run_stages(run, job)
        move_into_place(job.temp, job.destination)
    finally:
        job.temp.unlink(missing_ok=True)
    return VideoResult(
        info=job.info,
        path=job.destination,
        frames=summary.frames,
        width=job.plan.width,
        height=job.plan.height,
        codec=job.plan.codec,
        fields=job.fields,
        notes=job.notes,
        output_bytes=job.destination.stat().st_size,
        elapsed_s=time.monotonic() - started,
        skipped_packets=summary.skipped_packets,
        concealed_frames=summary.concealed_frames,
        dropped_streams=dropped,
        hardware_decoded=summary.hardware,
    )


def move_into_place(temp: Path, destination: Path) -> None:
    """Atomically put the finished file under its final name. Raises EncodeError."""
    try:
        os.replace(temp, destination)
    except OSError as exc:
        raise EncodeError(f"Cannot move the output to {destination}: {exc.strerror}") from exc


def _run_stages(run: Run, job: Job) -> tuple[tuple[str, ...], DecodeSummary]:
    decoded: queue.Queue[object] = queue.Queue(maxsize=QUEUE_BATCHES)
    upscaled: queue.Queue[object] = queue.Queue(maxsize=QUEUE_BATCHES)
    threads = [
        run.thread("decode", lambda: _decode_stage(run, job, decoded)),
        run.thread("upscale", lambda: _upscale_stage(run, job, decoded, upscaled)),
    ]
    summaries: list[DecodeSummary] = []
    dropped: tuple[str, ...] = ()
    try:
        batches = _encoder_input(run, upscaled, summaries, job)
        report = _reporter(run, job, job.hooks.on_progress)
        dropped = encode(
            job.source,
            job.temp,
            batches,
            plan=job.plan,
            container=job.container,
            on_batch=report,
            part=job.part,
        )
    except StoppedError:
        pass
    except BaseException as exc:
        run.fail(exc)
    finally:
        run.stop.set()
        for thread in threads:
            thread.join()
    if run.errors:
        raise run.errors[0]
    return dropped, summaries[0]


def _decode_stage(run: Run, job: Job, outbox: queue.Queue[object]) -> None:
    # closing(): when this stage stops early, the input file is closed right away.
    with closing(decode(job.source, options=job.decoding, window=job.window)) as decoded:
        items = _retimed(decoded, job, before_upscale=True)
        for item in items:
            run.cancel.raise_if_cancelled()
            run.put(outbox, item)
    run.put(outbox, END)


def _upscale_stage(
    run: Run, job: Job, inbox: queue.Queue[object], outbox: queue.Queue[object]
) -> None:
    for item in run.items(inbox):
        run.put(outbox, _upscaled(item, job) if isinstance(item, TimedBatch) else item)
    run.put(outbox, END)


def _upscaled(timed: TimedBatch, job: Job) -> TimedBatch:
    upscaler = job.upscaler
    pixels = timed.frames.pixels
    n, h, w, c = pixels.shape
    factor = upscaler.factor
    out = upscaler.upscale(pixels)
    if out.shape != (n, h * factor, w * factor, c) or out.dtype != pixels.dtype:
        raise ModelError(
            f"The upscaler returned {tuple(out.shape)} {out.dtype} for "
            f"{tuple(pixels.shape)} {pixels.dtype} at scale {factor}."
        )
    if job.hooks.on_frame is not None:
        job.hooks.on_frame(out[-1])
    batch = FrameBatch(pixels=out, pts=timed.frames.pts, first_index=timed.frames.first_index)
    return TimedBatch(frames=batch, durations=timed.durations, preroll=timed.preroll)


def _retimed(items: Iterator[object], job: Job, *, before_upscale: bool) -> Iterator[object]:
    """``items`` through the frame-rate stage when it runs at this point, else as they are."""
    stage, timing = job.frame_rate, job.retiming
    if stage is None or timing is None or stage.before_upscale != before_upscale:
        return items
    window, rate = job.window, job.plan.rate
    return stage.retimer(timing, window, rate=rate, batch_size=job.decoding.batch_size).run(items)


def _encoder_input(
    run: Run, inbox: queue.Queue[object], summaries: list[DecodeSummary], job: Job
) -> Iterator[TimedBatch]:
    """The batches to write: pre-roll batches only primed the upscaler."""
    for item in _retimed(run.items(inbox), job, before_upscale=False):
        if isinstance(item, DecodeSummary):
            summaries.append(item)
        elif isinstance(item, TimedBatch) and not item.preroll:
            yield item


def _reporter(
    run: Run, job: Job, on_progress: Callable[[Progress], None] | None
) -> Callable[[int], None]:
    done, total = 0, job.frames_total
    frame_mpx = job.plan.width * job.plan.height / 1e6

    def report(frames: int) -> None:
        nonlocal done
        done += frames
        if on_progress is not None:
            elapsed = time.monotonic() - run.started
            fps = done / elapsed if elapsed > 0 else 0.0
            on_progress(
                Progress(
                    frames_done=done,
                    frames_total=total,
                    elapsed_s=elapsed,
                    fps=fps,
                    frame_mpx=frame_mpx,
                )
            )

    return report


__all__ = [
    "CancelToken",
    "Job",
    "OutputDecision",
    "decide",
    "move_into_place",
    "prepare",
    "run_job",
    "temp_beside",
    "upscale_video",
]
