"""``upres upscale --workers N``: one video's chunks on N worker processes, then the join.

The parent plans the chunks (``upres.pipeline.chunks``), starts N spawned
processes that each load the model once (on a many-GPU host, worker ``i``
sees only GPU ``i``), hands them the chunks longest first, adds up their
progress, and joins the parts. The parts live in a hidden folder beside the
output, removed whatever happens. Workers ignore the terminal's Ctrl-C and
hang-up (sent to the whole process group): the parent alone decides, and a
stop (a signal, a failed chunk) reaches every worker through one shared flag,
which cancels its chunk within a batch. The flag is a plain shared byte, not
a multiprocessing Event: setting an Event waits for every waiter to wake, and
a worker killed while waiting would hang the parent. SIGTERM keeps its
default in workers, so the pool can end them when one of them died.
"""

from __future__ import annotations

import ctypes
import os
import queue
import shutil
import signal
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_EXCEPTION, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, replace
from multiprocessing import get_context
from multiprocessing.queues import Queue
from pathlib import Path

import torch

from upres.config import Settings
from upres.domain.framerate import FrameRateRequest
from upres.domain.tasks import Factor
from upres.errors import Cancelled, ModelError
from upres.models.devices import (
    CUDA_VISIBLE_DEVICES,
    GpuSlots,
    on_vulkan_device,
    visible_devices,
)
from upres.pipeline.chunks import ChunkSpan, join_chunks, upscale_chunk
from upres.pipeline.engine import CancelToken
from upres.pipeline.upscaler_cache import UpscalerFactory
from upres.pipeline.video_run import Progress, VideoHooks, VideoOptions, VideoResult
from upres.worker_wiring import apply_torch_threads, frame_rate_stage, upscalers

_POLL_S = 0.2
_TERMINAL_SIGNALS = (signal.SIGINT, signal.SIGHUP)
# The stop flag shared with the workers (a byte in shared memory, no lock).
Flag = ctypes.c_byte


@dataclass(frozen=True, kw_only=True)
class WorkerSetup:
    """What every worker process needs to build its upscaler (picklable).

    ``settings`` carry the model, device and temporal choice; ``denoise`` the
    model's denoise level (None: none chosen); worker ``i`` takes
    ``slots.gpu_for(i)``.
    """

    settings: Settings
    factor: Factor
    slots: GpuSlots
    torch_threads: int | None
    denoise: int | None = None


@dataclass(frozen=True, kw_only=True)
class _ChunkJob:
    source: Path
    span: ChunkSpan
    destination: Path
    # Without the frame-rate stage, which holds a network: each worker builds its own.
    options: VideoOptions
    frame_rate: FrameRateRequest


def default_workers(slots: GpuSlots) -> int:
    """One worker per GPU slot, else one."""
    return max(1, len(slots.gpus))


def upscale_chunked(
    *,
    source: Path,
    destination: Path,
    spans: Sequence[ChunkSpan],
    setup: WorkerSetup,
    workers: int,
    options: VideoOptions,
    hooks: VideoHooks,
    parts: Path | None = None,
) -> VideoResult:
    """Upscale ``spans`` of ``source`` on ``workers`` processes and join them into
    ``destination``: the join's result, with what the chunks' decodes found.

    ``hooks.on_progress`` sees the chunks' progress added up; ``hooks.on_frame``
    is not called (the frames are in the workers). Raises the first chunk's
    error (UpresError), Cancelled once ``hooks.cancel`` fires; either way every
    worker has stopped. The parts go to a folder of their own, deleted after;
    with ``parts`` (a folder kept for this source and these options) a part
    already there from an interrupted run is kept instead of made again (a part
    reaches its name only once whole), and the folder stays when the run fails.
    """
    started = time.monotonic()
    folder = parts or Path(
        tempfile.mkdtemp(prefix=f".{destination.name}.chunks-", dir=destination.parent)
    )
    folder.mkdir(parents=True, exist_ok=True)
    try:
        jobs = [
            _ChunkJob(
                source=source,
                span=span,
                destination=folder / f"chunk-{span.index:05d}.mp4",
                options=replace(options, frame_rate=None),
                frame_rate=options.frame_rate_request,
            )
            for span in spans
        ]
        finished = {job.span.index for job in jobs if job.destination.is_file()}
        todo = [job for job in jobs if job.span.index not in finished]
        kept = [job.span for job in jobs if job.span.index in finished]
        tally = _Tally(spans, started, hooks.on_progress, kept=kept)
        cancel = hooks.cancel or CancelToken()
        results = _run_all(todo, setup, workers, cancel, tally) if todo else ()
        joined = join_chunks(
            source=source,
            parts=[job.destination for job in jobs],
            destination=destination,
            options=options,
        )
    except BaseException:
        if parts is None:
            shutil.rmtree(folder, ignore_errors=True)
        raise
    shutil.rmtree(folder, ignore_errors=True)
    result = joined.with_chunks(results, elapsed_s=time.monotonic() - started)
    if not kept:
        return result
    note = f"{len(kept)} of {len(jobs)} chunks were kept from an interrupted run"
    return replace(result, chunks=len(jobs), notes=(*result.notes, note))


class _Tally:
    """The chunks' progress messages added up into one ``Progress``."""

    def __init__(
        self,
        spans: Sequence[ChunkSpan],
        started: float,
        report: Callable[[Progress], None] | None,
        *,
        kept: Sequence[ChunkSpan] = (),
    ) -> None:
        self._done = dict.fromkeys((s.index for s in spans), 0)
        self._done |= {s.index: s.frame_count for s in kept}
        self._totals = {s.index: s.frame_count for s in spans}
        self._started, self._report = started, report

    def add(self, index: int, done: int, total: int | None) -> None:
        self._done[index] = done
        if total is not None:
            self._totals[index] = total
        if self._report is None:
            return
        elapsed = time.monotonic() - self._started
        frames = sum(self._done.values())
        self._report(
            Progress(
                frames_done=frames,
                frames_total=sum(self._totals.values()),
                elapsed_s=elapsed,
                fps=frames / elapsed if elapsed > 0 else 0.0,
            )
        )


def _run_all(
    jobs: list[_ChunkJob], setup: WorkerSetup, workers: int, cancel: CancelToken, tally: _Tally
) -> tuple[VideoResult, ...]:
    """The chunks' results, in the order of ``jobs``."""
    context = get_context("spawn")
    progress: Queue[tuple[int, int, int | None]] = context.Queue()
    stop: Flag = context.Value("b", 0, lock=False)
    slots: Queue[int] = context.Queue()
    for slot in range(workers):
        slots.put(slot)
    with ProcessPoolExecutor(
        max_workers=workers,
        mp_context=context,
        initializer=_start_worker,
        initargs=(setup, slots, progress, stop),
    ) as pool:
        longest_first = sorted(jobs, key=lambda j: j.span.frame_count, reverse=True)
        futures = {job.span.index: pool.submit(_upscale, job) for job in longest_first}
        try:
            _watch(list(futures.values()), cancel, progress, tally)
        finally:
            stop.value = 1
            for future in futures.values():
                future.cancel()
    _drain(progress, tally)
    return tuple(futures[job.span.index].result() for job in jobs)


def _watch(
    futures: list[Future[VideoResult]],
    cancel: CancelToken,
    progress: Queue[tuple[int, int, int | None]],
    tally: _Tally,
) -> None:
    """Until every chunk is done; raises Cancelled, the first chunk's error, or ModelError
    when a worker process died."""
    pending: set[Future[VideoResult]] = set(futures)
    while pending:
        done, pending = wait(pending, timeout=_POLL_S, return_when=FIRST_EXCEPTION)
        _drain(progress, tally)
        cancel.raise_if_cancelled()
        for future in done:
            error = future.exception()
            if isinstance(error, BrokenProcessPool):
                raise ModelError(
                    "A worker process ended without finishing its chunk (out of memory?)."
                ) from error
            if error is not None:
                raise error


def _drain(progress: Queue[tuple[int, int, int | None]], tally: _Tally) -> None:
    while True:
        try:
            index, done, total = progress.get_nowait()
        except queue.Empty:
            return
        tally.add(index, done, total)


@dataclass
class _Worker:
    """One worker process's state, set up once by ``_start_worker``."""

    upscaler_for: UpscalerFactory
    setup: WorkerSetup
    progress: Queue[tuple[int, int, int | None]]
    cancel: CancelToken


_worker: _Worker | None = None


def _start_worker(
    setup: WorkerSetup,
    slots: Queue[int],
    progress: Queue[tuple[int, int, int | None]],
    stop: Flag,
) -> None:
    """Runs first in each worker process: signals, its GPU, threads, the model."""
    global _worker  # noqa: PLW0603 - one per process, set once by the pool's initializer
    for signum in _TERMINAL_SIGNALS:
        signal.signal(signum, signal.SIG_IGN)
    settings = _take_gpu(setup, slots.get())
    apply_torch_threads(setup.settings)
    if setup.torch_threads is not None and setup.settings.torch_threads is None:
        torch.set_num_threads(setup.torch_threads)
    cancel = CancelToken()
    threading.Thread(target=_cancel_on, args=(stop, cancel), daemon=True).start()
    _worker = _Worker(
        upscaler_for=upscalers(settings), setup=setup, progress=progress, cancel=cancel
    )


def _take_gpu(setup: WorkerSetup, slot: int) -> Settings:
    """This worker's settings on its GPU slot's device: its own Vulkan device, or its own
    CUDA GPU, the only one it sees (set before CUDA starts in this process)."""
    gpu = setup.slots.gpu_for(slot)
    if gpu is None:
        return setup.settings
    if setup.slots.vulkan:
        return on_vulkan_device(setup.settings, gpu)
    os.environ[CUDA_VISIBLE_DEVICES] = visible_devices(gpu, os.environ.get(CUDA_VISIBLE_DEVICES))
    return setup.settings


def _cancel_on(stop: Flag, cancel: CancelToken) -> None:
    while not stop.value:
        time.sleep(_POLL_S)
    cancel.cancel()


def _upscale(job: _ChunkJob) -> VideoResult:
    """One chunk, in a worker process. Raises UpresError (Cancelled once stopped)."""
    worker = _worker
    if worker is None:
        raise Cancelled("The worker was not started.")
    index = job.span.index

    def report(progress: Progress) -> None:
        worker.progress.put((index, progress.frames_done, progress.frames_total))

    return upscale_chunk(
        source=job.source,
        span=job.span,
        destination=job.destination,
        upscaler=worker.upscaler_for(worker.setup.factor, denoise=worker.setup.denoise),
        options=replace(
            job.options,
            frame_rate=frame_rate_stage(
                worker.setup.settings,
                job.frame_rate,
                worker.setup.factor,
                denoise=worker.setup.denoise,
            ),
        ),
        hooks=VideoHooks(on_progress=report, cancel=worker.cancel),
    )
