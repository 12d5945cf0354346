"""The engine: one video in, one upscaled video out.

    probe -> decode (thread) -> [queue] -> upscale (thread) -> [queue] -> encode (caller's thread)

The queues are bounded, so memory stays flat however long the video is, and
decode, inference and encode overlap. The first error in any stage stops the
others (each waits on its queue with a timeout and checks a shared stop
flag), and is raised once every thread has ended. The output is written to a
hidden temporary name beside ``destination`` and renamed only on success.
"""

from __future__ import annotations

import os
import queue
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path

import torch

from upres.domain.media import EncodeSettings, MediaLimits, VideoCodec, VideoInfo, frame_total
from upres.errors import Cancelled, EncodeError, ModelError
from upres.inputs.probe import probe
from upres.pipeline.completeness import check_complete
from upres.pipeline.decode import DecodeOptions, DecodeSummary, TimedBatch, decode
from upres.pipeline.destination import check_destination
from upres.pipeline.encode import OutputPlan, encode, plan_output
from upres.pipeline.fields import FieldScan, deinterlace_for, field_notes, scan_fields
from upres.pipeline.frames import FrameBatch, FrameUpscaler

_QUEUE_BATCHES = 2
_POLL_S = 0.1


@dataclass(frozen=True, kw_only=True)
class Progress:
    """How far one upscale is. ``frames_total`` is an estimate (None when unknown)."""

    frames_done: int
    frames_total: int | None
    elapsed_s: float
    fps: float


@dataclass(frozen=True, kw_only=True)
class UpscaleResult:
    """What was written.

    ``skipped_packets``/``concealed_frames`` count damage in the input (see
    ``upres.pipeline.decode``); ``dropped_streams`` lists source streams the output
    cannot carry; ``hardware_decoded`` is True when CUDA decoding was used;
    ``notes`` say what upres decided for the user (codec, deinterlacing).
    """

    info: VideoInfo
    path: Path
    frames: int
    width: int
    height: int
    codec: VideoCodec
    fields: FieldScan
    notes: tuple[str, ...]
    output_bytes: int
    elapsed_s: float
    skipped_packets: int
    concealed_frames: int
    dropped_streams: tuple[str, ...]
    hardware_decoded: bool


class CancelToken:
    """A thread-safe cancel flag; the pipeline checks it between batches."""

    def __init__(self) -> None:
        self._event = threading.Event()

    def cancel(self) -> None:
        self._event.set()

    @property
    def is_cancelled(self) -> bool:
        return self._event.is_set()

    def raise_if_cancelled(self) -> None:
        """Raises Cancelled when ``cancel()`` has been called."""
        if self._event.is_set():
            raise Cancelled("The upscale was cancelled.")


def upscale_video(
    *,
    source: Path,
    destination: Path,
    upscaler: FrameUpscaler,
    encode: EncodeSettings,
    limits: MediaLimits,
    on_progress: Callable[[Progress], None] | None = None,
    cancel: CancelToken | None = None,
    hardware_decode: bool | None = None,
    double_rate: bool = False,
    on_frame: Callable[[torch.Tensor], None] | None = None,
) -> UpscaleResult:
    """Upscale ``source`` into ``destination`` (mp4, or Matroska for .mkv) with ``upscaler``.

    ``hardware_decode`` None uses CUDA decoding when a GPU is present. An
    interlaced source is deinterlaced, to one frame per field with ``double_rate``.
    Raises InvalidRequest before any work when ``destination`` cannot be
    written (``check_destination``), the MediaError subclasses of ``probe``,
    ``check_complete`` and ``decode``, ModelError,
    ``on_frame`` sees the last upscaled frame of each batch, (H, W, 3) on the
    CPU, in the upscaling thread (it must be quick and must not keep it).
    EncodeError, Cancelled, or whatever ``on_progress`` raises; on any error no
    file exists under ``destination`` and no temporary file is left.
    """
    started = time.monotonic()
    job = _prepare(
        source=source,
        destination=destination,
        upscaler=upscaler,
        settings=encode,
        limits=limits,
        on_progress=on_progress,
        hardware_decode=hardware_decode,
        double_rate=double_rate,
        on_frame=on_frame,
    )
    run = _Run(cancel=cancel or CancelToken(), started=started)
    try:
        dropped, summary = _run_stages(run, job)
        _publish(job.temp, destination)
    finally:
        job.temp.unlink(missing_ok=True)
    return UpscaleResult(
        info=job.info,
        path=destination,
        frames=summary.frames,
        width=job.plan.width,
        height=job.plan.height,
        codec=job.plan.codec,
        fields=job.fields,
        notes=job.plan.notes + field_notes(job.fields, job.options.deinterlace),
        output_bytes=destination.stat().st_size,
        elapsed_s=time.monotonic() - started,
        skipped_packets=summary.skipped_packets,
        concealed_frames=summary.concealed_frames,
        dropped_streams=dropped,
        hardware_decoded=summary.hardware,
    )


@dataclass(frozen=True, kw_only=True)
class _Job:
    """The inputs of the stages of one call."""

    source: Path
    temp: Path
    upscaler: FrameUpscaler
    options: DecodeOptions
    plan: OutputPlan
    container: str
    info: VideoInfo
    fields: FieldScan
    on_progress: Callable[[Progress], None] | None
    on_frame: Callable[[torch.Tensor], None] | None


def _prepare(
    *,
    source: Path,
    destination: Path,
    upscaler: FrameUpscaler,
    settings: EncodeSettings,
    limits: MediaLimits,
    on_progress: Callable[[Progress], None] | None,
    hardware_decode: bool | None,
    double_rate: bool,
    on_frame: Callable[[torch.Tensor], None] | None,
) -> _Job:
    """Check the destination, probe the source, check it is whole, and decide how to
    decode and encode it."""
    container = check_destination(destination)
    info = probe(source, limits=limits)
    check_complete(source)
    fields = scan_fields(source)
    deinterlace = deinterlace_for(fields, double_rate=double_rate)
    options = DecodeOptions.for_video(
        info,
        batch_size=max(1, upscaler.batch_size),
        hardware=torch.cuda.is_available() if hardware_decode is None else hardware_decode,
        deinterlace=deinterlace,
    )
    conversion = options.conversion
    rate = deinterlace.rate if deinterlace is not None else 1
    return _Job(
        source=source,
        temp=destination.with_name(f".{destination.name}.{uuid.uuid4().hex[:12]}.part"),
        upscaler=upscaler,
        options=options,
        plan=plan_output(
            info, scale=upscaler.scale, conversion=conversion, settings=settings, rate=rate
        ),
        container=container,
        info=info,
        fields=fields,
        on_progress=on_progress,
        on_frame=on_frame,
    )


def _publish(temp: Path, destination: Path) -> None:
    """Atomically put the finished file under its final name. Raises EncodeError."""
    try:
        os.replace(temp, destination)
    except OSError as exc:
        raise EncodeError(f"Cannot move the output to {destination}: {exc.strerror}") from exc


class _StoppedError(Exception):
    """Another stage failed; this one leaves quietly."""


class _End:
    """Marks the end of a queue."""


_END = _End()


class _Run:
    """The shared state of one ``upscale_video`` call: stop flag, first error, cancel token."""

    def __init__(self, *, cancel: CancelToken, started: float) -> None:
        self.cancel = cancel
        self.started = started
        self.stop = threading.Event()
        self.errors: list[BaseException] = []
        self.lock = threading.Lock()

    def fail(self, exc: BaseException) -> None:
        with self.lock:
            self.errors.append(exc)
        self.stop.set()

    def put(self, box: queue.Queue[object], item: object) -> None:
        """Put, waiting for room; raises _StoppedError when another stage failed."""
        while not self.stop.is_set():
            try:
                box.put(item, timeout=_POLL_S)
            except queue.Full:
                continue
            return
        raise _StoppedError

    def items(self, box: queue.Queue[object]) -> Iterator[object]:
        """Items until the end marker; raises Cancelled or _StoppedError."""
        while True:
            self.cancel.raise_if_cancelled()
            if self.stop.is_set():
                raise _StoppedError
            try:
                item = box.get(timeout=_POLL_S)
            except queue.Empty:
                continue
            if item is _END:
                return
            yield item

    def thread(self, name: str, work: Callable[[], None]) -> threading.Thread:
        def body() -> None:
            try:
                work()
            except _StoppedError:
                pass
            except BaseException as exc:
                self.fail(exc)

        thread = threading.Thread(target=body, name=f"upres-{name}", daemon=True)
        thread.start()
        return thread


def _run_stages(run: _Run, job: _Job) -> tuple[tuple[str, ...], DecodeSummary]:
    decoded: queue.Queue[object] = queue.Queue(maxsize=_QUEUE_BATCHES)
    upscaled: queue.Queue[object] = queue.Queue(maxsize=_QUEUE_BATCHES)
    threads = [
        run.thread("decode", lambda: _decode_stage(run, job.source, job.options, decoded)),
        run.thread("upscale", lambda: _upscale_stage(run, job, decoded, upscaled)),
    ]
    summaries: list[DecodeSummary] = []
    dropped: tuple[str, ...] = ()
    try:
        batches = _encoder_input(run, upscaled, summaries)
        report = _reporter(run, job.info, job.plan.rate, job.on_progress)
        dropped = encode(
            job.source,
            job.temp,
            batches,
            plan=job.plan,
            container=job.container,
            on_batch=report,
        )
    except _StoppedError:
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


def _decode_stage(
    run: _Run, source: Path, options: DecodeOptions, outbox: queue.Queue[object]
) -> None:
    # closing(): when this stage stops early, the input file is closed right away.
    with closing(decode(source, options=options)) as items:
        for item in items:
            run.cancel.raise_if_cancelled()
            run.put(outbox, item)
    run.put(outbox, _END)


def _upscale_stage(
    run: _Run, job: _Job, inbox: queue.Queue[object], outbox: queue.Queue[object]
) -> None:
    for item in run.items(inbox):
        run.put(outbox, _upscaled(item, job) if isinstance(item, TimedBatch) else item)
    run.put(outbox, _END)


def _upscaled(timed: TimedBatch, job: _Job) -> TimedBatch:
    upscaler = job.upscaler
    pixels = timed.frames.pixels
    n, h, w, c = pixels.shape
    scale = upscaler.scale
    out = upscaler.upscale(pixels)
    if out.shape != (n, h * scale, w * scale, c) or out.dtype != pixels.dtype:
        raise ModelError(
            f"The upscaler returned {tuple(out.shape)} {out.dtype} for "
            f"{tuple(pixels.shape)} {pixels.dtype} at scale {scale}."
        )
    if job.on_frame is not None:
        job.on_frame(out[-1])
    batch = FrameBatch(pixels=out, pts=timed.frames.pts, first_index=timed.frames.first_index)
    return TimedBatch(frames=batch, durations=timed.durations)


def _encoder_input(
    run: _Run, inbox: queue.Queue[object], summaries: list[DecodeSummary]
) -> Iterator[TimedBatch]:
    for item in run.items(inbox):
        if isinstance(item, DecodeSummary):
            summaries.append(item)
        elif isinstance(item, TimedBatch):
            yield item


def _reporter(
    run: _Run, info: VideoInfo, rate: int, on_progress: Callable[[Progress], None] | None
) -> Callable[[int], None]:
    frames = frame_total(info.frame_count, info.duration_s, info.average_fps)
    total = frames * rate if frames is not None else None
    done = 0

    def report(frames: int) -> None:
        nonlocal done
        done += frames
        if on_progress is not None:
            elapsed = time.monotonic() - run.started
            fps = done / elapsed if elapsed > 0 else 0.0
            on_progress(Progress(frames_done=done, frames_total=total, elapsed_s=elapsed, fps=fps))

    return report


__all__ = ["CancelToken", "Progress", "UpscaleResult", "upscale_video"]
