"""Run one claimed task: fetch, then upscale in one pass, or plan it into
chunks, or join its finished chunks; store, settle.

The runner never decides money or status on its own: it reports to the store
through fenced writes. A heartbeat thread renews the lease every few seconds,
stores progress and reads the cancel flag; a cancelled task or a lost lease
stops the pipeline through its cancel token. Errors map to task outcomes as
``upres.jobs.outcomes`` says.

A source no longer than ``chunk_seconds`` (one span) runs in one pass exactly
as before chunks existed. A longer one is planned into chunks and its lease
released; workers claim the chunks (``upres.jobs.chunk_runner``), and the one
that finishes the last one gets the task again to join the parts.
"""

from __future__ import annotations

import logging
import shutil
import threading
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Protocol

from upres.domain.chunks import Chunk, ChunkClaim, ChunkStatus, part_keys_ever_written
from upres.domain.media import EncodeSettings, MediaLimits
from upres.domain.records import CallbackBody, Claim, Heartbeat
from upres.domain.storage_keys import chunk_source_key, preview_key
from upres.domain.tasks import Task, TaskError
from upres.errors import LeaseLost, NotFound
from upres.jobs.chunk_runner import ChunkRunner, FrameRateFactory
from upres.jobs.heartbeat import heartbeats
from upres.jobs.input_cache import InputCache, chunk_source
from upres.jobs.outcomes import settled
from upres.jobs.publish import Publisher, store_preview
from upres.jobs.queue import ClaimedChunks, ClaimedTasks
from upres.pipeline.chunks import ChunkSpan, cut_spans, join_chunks
from upres.pipeline.engine import CancelToken, upscale_video
from upres.pipeline.preview import FramePreview
from upres.pipeline.upscaler_cache import UpscalerFactory
from upres.pipeline.video_run import Progress, VideoHooks, VideoOptions
from upres.storage.base import ResultStorage

log = logging.getLogger(__name__)


class RunnerStore(ClaimedTasks, ClaimedChunks, Protocol):
    """What running tasks and chunks writes to the store."""


class _Progress:
    """The latest progress and preview, shared by the pipeline threads and the heartbeat."""

    def __init__(self, preview_file: Path) -> None:
        self.preview = FramePreview()
        self.preview_file = preview_file
        self._lock = threading.Lock()
        self._percent = 0
        self._eta_s = 0
        self._fps: float | None = None
        self._frame_mpx: float | None = None

    def update(self, progress: Progress) -> None:
        with self._lock:
            self._frame_mpx = progress.frame_mpx or self._frame_mpx
        if not progress.frames_total:
            return
        total = progress.frames_total
        left = max(total - progress.frames_done, 0)
        with self._lock:
            # 99 at most until the result is stored: 100 means downloadable.
            self._percent = min(99, 100 * progress.frames_done // total)
            self._eta_s = int(left / progress.fps) + 1 if progress.fps > 0 else self._eta_s
            self._fps = progress.fps if progress.fps > 0 else self._fps

    def read(self) -> tuple[int, int, float | None]:
        with self._lock:
            return self._percent, self._eta_s, self._fps

    @property
    def frame_mpx(self) -> float | None:
        """The output megapixels of one frame, once the run reported it."""
        with self._lock:
            return self._frame_mpx


class TaskRunner:
    """Everything needed to run tasks and chunks; the constructor is its whole configuration.

    ``encode`` is for a task run in one pass (it may be kept up with this
    machine's model, ``encoding_for``); ``chunk_encode`` for chunk parts and
    their join, which must be the same on every machine that may run a chunk of
    the task, so it is the configured encoding as is.
    """

    def __init__(
        self,
        *,
        store: RunnerStore,
        storage: ResultStorage,
        inputs: InputCache,
        upscaler_for: UpscalerFactory,
        frame_rate_for: FrameRateFactory,
        render: CallbackBody,
        publisher: Publisher,
        work_dir: Path,
        limits: MediaLimits,
        encode: EncodeSettings,
        chunk_encode: EncodeSettings,
        heartbeat_s: float,
        chunk_seconds: float,
        double_rate: bool = False,
    ) -> None:
        self._store = store
        self._storage = storage
        self._inputs = inputs
        self._upscaler_for = upscaler_for
        self._frame_rate_for = frame_rate_for
        self._render = render
        self._publisher = publisher
        self._work_dir = work_dir
        self._limits = limits
        self._encode = encode
        self._chunk_encode = chunk_encode
        self._heartbeat_s = heartbeat_s
        self._chunk_seconds = chunk_seconds
        self._double_rate = double_rate
        self._chunks = ChunkRunner(
            store=store,
            storage=storage,
            upscaler_for=upscaler_for,
            frame_rate_for=frame_rate_for,
            render=render,
            publisher=publisher,
            work_dir=work_dir,
            limits=limits,
            encode=chunk_encode,
            heartbeat_s=heartbeat_s,
            double_rate=double_rate,
            finalise=self.run,
        )

    def run(self, claim: Claim) -> Task | None:
        """Run ``claim`` to an outcome. Returns the settled task, or None when
        it was planned into chunks, cancelled or the lease lost (someone else
        settles it)."""
        scratch = self._work_dir / f"{claim.task.id}-{claim.attempt}"
        scratch.mkdir(parents=True, exist_ok=True)
        what = f"task {claim.task.id} attempt {claim.attempt}"
        try:
            return settled(lambda: self._execute(claim, scratch), self._failer(claim), what=what)
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
            self._forget_preview(claim.task.id)

    def run_chunk(self, claim: ChunkClaim) -> Task | None:
        """Run a claimed chunk to an outcome (``ChunkRunner.run``)."""
        return self._chunks.run(claim)

    def _failer(self, claim: Claim) -> Callable[[TaskError, bool], Task | None]:
        def fail(error: TaskError, retry: bool) -> Task | None:
            return self._store.fail(claim, error=error, retry=retry, callback_body=self._render)

        return fail

    def _execute(self, claim: Claim, scratch: Path) -> Task | None:
        chunks = self._store.task_chunks(claim.task.id)
        if chunks and all(chunk.status is ChunkStatus.DONE for chunk in chunks):
            return self._join(claim, chunks, scratch)
        if chunks:
            # Chunks still to run (cannot happen while chunk leases are the
            # only ones on a planned task, but is harmless): hand it back.
            self._store.insert_chunks(claim, chunks)
            return None
        return self._plan_or_run(claim, scratch)

    def _plan_or_run(self, claim: Claim, scratch: Path) -> Task | None:
        task = claim.task
        progress = _Progress(scratch / "preview.jpg")
        cancel = CancelToken()
        planned = False
        try:
            with self._task_heartbeat(claim, progress, cancel):
                source = self._inputs.get(task)
                cancel.raise_if_cancelled()
                spans = cut_spans(source, chunk_seconds=self._chunk_seconds)
                if len(spans) > 1:
                    self._plan(claim, source, spans)
                    planned = True
                    return None
                output = scratch / "output.mp4"
                result = upscale_video(
                    source=source,
                    destination=output,
                    upscaler=self._upscaler_for(
                        task.factor, network=task.network, denoise=task.denoise
                    ),
                    options=VideoOptions(
                        encode=self._encode,
                        limits=self._limits,
                        double_rate=self._double_rate,
                        frame_rate=self._frame_rate_for(task),
                    ),
                    hooks=VideoHooks(
                        on_progress=progress.update, on_frame=progress.preview.offer, cancel=cancel
                    ),
                )
        finally:
            if not planned:  # a planned task's chunks run here next, most likely
                self._inputs.drop(task.id)
        for note in result.notes:
            log.info("task %s: %s", task.id, note)
        megapixels = result.frames * result.width * result.height / 1e6
        return self._publisher.publish(
            claim,
            output,
            result.info.duration_s,
            codec=result.codec,
            notes=result.notes,
            mpix_per_s=megapixels / max(result.elapsed_s, 1e-3),
        )

    def _plan(self, claim: Claim, source: Path, spans: Sequence[ChunkSpan]) -> None:
        """Store the input for the chunks unless it is in storage already (an upload,
        a kept input: ``chunk_source``), then record them (fenced)."""
        key = chunk_source(claim.task, self._storage)
        stored_here = key == chunk_source_key(claim.task.id)
        if stored_here:
            self._storage.put(source, key)
        try:
            self._store.insert_chunks(claim, spans)
        except LeaseLost:
            if stored_here:
                self._storage.delete(key)
            raise
        log.info("task %s planned into %d chunks reading %s", claim.task.id, len(spans), key)

    def _join(self, claim: Claim, chunks: list[Chunk], scratch: Path) -> Task:
        """Join the finished parts into the result, publish it, then delete the parts."""
        task = claim.task
        cancel = CancelToken()
        with self._task_heartbeat(claim, _Progress(scratch / "preview.jpg"), cancel):
            source = self._inputs.get(task, stored=chunk_source(task, self._storage))
            parts = []
            for chunk in chunks:
                if chunk.part_key is None:
                    raise NotFound(f"Chunk {chunk.index} of task {task.id} has no part")
                parts.append(scratch / f"part-{chunk.index:05d}.mp4")
                self._storage.copy_to(chunk.part_key, parts[-1])
            output = scratch / "output.mp4"
            result = join_chunks(
                source=source,
                parts=parts,
                destination=output,
                options=VideoOptions(
                    encode=self._chunk_encode,
                    limits=self._limits,
                    double_rate=self._double_rate,
                    frame_rate=self._frame_rate_for(task),
                ),
            )
        for note in result.notes:
            log.info("task %s: %s", task.id, note)
        published = self._publisher.publish(
            claim,
            output,
            result.info.duration_s,
            codec=result.codec,
            notes=result.notes,
            mpix_per_s=None,
        )
        self._inputs.drop(task.id)
        self._delete_parts(task.id, chunks)
        return published

    def _delete_parts(self, task_id: str, chunks: list[Chunk]) -> None:
        """Delete a published task's parts (the janitor retries what fails here)."""
        try:
            for chunk in chunks:
                for key in part_keys_ever_written(chunk):
                    self._storage.delete(key)
            self._storage.delete(chunk_source_key(task_id))
            self._store.forget_chunks(task_id)
        except Exception:
            log.exception("parts of task %s not deleted; the janitor will", task_id)

    def _task_heartbeat(
        self, claim: Claim, progress: _Progress, cancel: CancelToken
    ) -> AbstractContextManager[None]:
        def beat() -> Heartbeat:
            percent, eta_s, fps = progress.read()
            return self._store.heartbeat(
                claim,
                progress=percent,
                estimated_time_s=eta_s,
                fps=fps,
                frame_mpx=progress.frame_mpx,
            )

        return heartbeats(
            beat,
            every_s=self._heartbeat_s,
            cancel=cancel,
            name=f"task {claim.task.id}",
            after_beat=lambda: store_preview(
                self._storage, progress.preview, progress.preview_file, claim.task.id
            ),
        )

    def _forget_preview(self, task_id: str) -> None:
        try:
            self._storage.delete(preview_key(task_id))
        except Exception:
            log.exception("preview of task %s not deleted", task_id)
