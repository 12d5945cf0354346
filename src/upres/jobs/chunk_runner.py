"""Run one claimed chunk: upscale its frame range, store the part, record it done.

Like a task run, the chunk's heartbeat renews its lease and reports its
frames (the store turns them into the task's progress); a cancelled or
failed task stops every chunk at its next heartbeat. Errors map to outcomes
as ``upres.jobs.outcomes`` says, applied to the chunk: a transient failure
retries the chunk alone, a lasting one fails the task. The worker that
records the task's last chunk done runs the join (``finalise``).
"""

from __future__ import annotations

import logging
import shutil
import threading
from collections.abc import Callable
from contextlib import AbstractContextManager
from pathlib import Path

from upres.domain.chunks import ChunkClaim
from upres.domain.media import EncodeSettings, MediaLimits
from upres.domain.records import CallbackBody, Claim, Heartbeat
from upres.domain.storage_keys import chunk_output_key
from upres.domain.tasks import Task, TaskError
from upres.errors import InputRefused, LeaseLost, NotFound
from upres.inputs.ranged import BlockReader, RangedInput
from upres.jobs.heartbeat import heartbeats
from upres.jobs.input_cache import chunk_source
from upres.jobs.outcomes import settled
from upres.jobs.publish import Publisher, store_preview
from upres.jobs.queue import ClaimedChunks
from upres.pipeline.chunks import ChunkSpan, upscale_chunk
from upres.pipeline.engine import CancelToken
from upres.pipeline.interpolate import FrameRateStage
from upres.pipeline.preview import FramePreview
from upres.pipeline.upscaler_cache import UpscalerFactory
from upres.pipeline.video_run import Progress, VideoHooks, VideoOptions, VideoResult
from upres.storage.base import ResultStorage

log = logging.getLogger(__name__)


# The frame-rate stage a task chose (None: it keeps the source's timing); built by
# the composition root beside the task's network (upres.worker_wiring.frame_rates).
FrameRateFactory = Callable[[Task], FrameRateStage | None]


class _ChunkProgress:
    """The latest frames done, speed and preview of a chunk, shared with its heartbeat.

    Frames and speed are counted in the chunk's source frames (``frame_count``),
    as the store sums them into the task's progress and time left: a chunk whose
    output has more frames (a new frame rate, slow motion) reports the share of
    its output done, scaled to its source frames.
    """

    def __init__(self, preview_file: Path, frame_count: int) -> None:
        self.preview = FramePreview()
        self.preview_file = preview_file
        self._frame_count = frame_count
        self._lock = threading.Lock()
        self._frames = 0
        self._fps: float | None = None
        self._frame_mpx: float | None = None

    def update(self, progress: Progress) -> None:
        total = progress.frames_total
        scale = self._frame_count / total if total else 1.0
        with self._lock:
            self._frames = int(progress.frames_done * scale)
            self._fps = progress.fps * scale if progress.fps > 0 else self._fps
            self._frame_mpx = progress.frame_mpx or self._frame_mpx

    def read(self) -> tuple[int, float | None, float | None]:
        """Frames done, frames per second and output megapixels per frame."""
        with self._lock:
            return self._frames, self._fps, self._frame_mpx


class ChunkRunner:
    """Runs claimed chunks; the constructor is its whole configuration. Each
    chunk's speed is recorded through ``publisher`` (under its task's network),
    as a single-pass run's is."""

    def __init__(
        self,
        *,
        store: ClaimedChunks,
        storage: ResultStorage,
        upscaler_for: UpscalerFactory,
        frame_rate_for: FrameRateFactory,
        render: CallbackBody,
        publisher: Publisher,
        work_dir: Path,
        limits: MediaLimits,
        encode: EncodeSettings,
        heartbeat_s: float,
        finalise: Callable[[Claim], Task | None],
        double_rate: bool = False,
    ) -> None:
        self._store = store
        self._publisher = publisher
        self._storage = storage
        self._upscaler_for = upscaler_for
        self._frame_rate_for = frame_rate_for
        self._render = render
        self._work_dir = work_dir
        self._limits = limits
        self._encode = encode
        self._heartbeat_s = heartbeat_s
        self._finalise = finalise
        self._double_rate = double_rate

    def run(self, claim: ChunkClaim) -> Task | None:
        """Run ``claim`` to an outcome. Returns the task once this chunk's worker
        joined and settled it, else None (more chunks to go, cancelled, lease
        lost, or the chunk failed and retries)."""
        name = f"{claim.task.id}-chunk{claim.chunk.index}-{claim.attempt}"
        scratch = self._work_dir / name
        scratch.mkdir(parents=True, exist_ok=True)
        what = f"chunk {claim.chunk.index} of task {claim.task.id} attempt {claim.attempt}"
        try:
            final = settled(lambda: self._execute(claim, scratch), self._failer(claim), what=what)
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
        return final

    def _failer(self, claim: ChunkClaim) -> Callable[[TaskError, bool], Task | None]:
        def fail(error: TaskError, retry: bool) -> Task | None:
            task = self._store.fail_chunk(
                claim, error=error, retry=retry, callback_body=self._render
            )
            return task if task.status.is_terminal else None

        return fail

    def _execute(self, claim: ChunkClaim, scratch: Path) -> Task | None:
        progress = _ChunkProgress(scratch / "preview.jpg", claim.chunk.frame_count)
        cancel = CancelToken()
        part = scratch / "part.mp4"
        with self._heartbeat(claim, progress, cancel):
            result = self._upscale(claim, part, progress, cancel)
            key = chunk_output_key(claim.task.id, claim.chunk.index, claim.attempt)
            self._storage.put(part, key)
        self._record_speed(claim, result)
        try:
            final = self._store.finish_chunk(claim, part_key=key)
        except LeaseLost:
            self._storage.delete(key)
            raise
        return None if final is None else self._finalise(final)

    def _upscale(
        self, claim: ChunkClaim, part: Path, progress: _ChunkProgress, cancel: CancelToken
    ) -> VideoResult:
        """The chunk's frames into ``part``, reading only its bytes of the stored input."""
        with _stored_input(self._storage, chunk_source(claim.task, self._storage)) as source:
            cancel.raise_if_cancelled()
            result = upscale_chunk(
                source=source,
                span=_span(claim),
                destination=part,
                upscaler=self._upscaler_for(
                    claim.task.factor, network=claim.task.network, denoise=claim.task.denoise
                ),
                options=VideoOptions(
                    encode=self._encode,
                    limits=self._limits,
                    double_rate=self._double_rate,
                    frame_rate=self._frame_rate_for(claim.task),
                ),
                hooks=VideoHooks(
                    on_progress=progress.update, on_frame=progress.preview.offer, cancel=cancel
                ),
            )
        log.info(
            "chunk %d of task %s read %d bytes of its input",
            claim.chunk.index,
            claim.task.id,
            source.bytes_read,
        )
        return result

    def _record_speed(self, claim: ChunkClaim, result: VideoResult) -> None:
        """Fold this worker's speed into the estimates; it never fails a chunk."""
        megapixels = result.frames * result.width * result.height / 1e6
        try:
            self._publisher.record_speed(claim.task, megapixels / max(result.elapsed_s, 1e-3))
        except Exception:
            log.exception("speed of chunk %d not recorded", claim.chunk.index)

    def _heartbeat(
        self, claim: ChunkClaim, progress: _ChunkProgress, cancel: CancelToken
    ) -> AbstractContextManager[None]:
        def beat() -> Heartbeat:
            frames, fps, frame_mpx = progress.read()
            return self._store.heartbeat_chunk(
                claim, frames_done=frames, fps=fps, frame_mpx=frame_mpx
            )

        def preview() -> None:
            store_preview(self._storage, progress.preview, progress.preview_file, claim.task.id)

        name = f"chunk {claim.chunk.index} of task {claim.task.id}"
        return heartbeats(
            beat, every_s=self._heartbeat_s, cancel=cancel, name=name, after_beat=preview
        )


def _stored_input(storage: ResultStorage, key: str) -> RangedInput:
    """The stored input under ``key``, read in ranges: only the packets of a chunk's
    span (and its pre-roll) and the index, not the whole file."""

    def open_reader() -> BlockReader:
        try:
            return storage.reader(key)
        except NotFound as exc:
            raise InputRefused("The task's stored input is gone") from exc

    return RangedInput(open_reader, name=key)


def _span(claim: ChunkClaim) -> ChunkSpan:
    chunk = claim.chunk
    return ChunkSpan(
        index=chunk.index,
        first_frame=chunk.first_frame,
        frame_count=chunk.frame_count,
        start_s=chunk.start_s,
        end_s=chunk.end_s,
    )
