"""Run one claimed task: fetch, upscale, store, settle.

The runner never decides money or status on its own: it reports to the store
through fenced writes. A heartbeat thread renews the lease every few seconds,
stores progress and reads the cancel flag; a cancelled task or a lost lease
stops the pipeline through its cancel token. Errors map to task outcomes:

- bad input (``MediaError``) or an input URL that fails the same way on every
  try (``InputRefused``: 4xx, refused, too large): failed at once, refunded;
- anything else (a transient download failure, a crash in a stage): failed
  with a retry, so the store puts the task back in the queue while attempts
  remain;
- cancelled or lease lost: nothing more to write (the store already knows).
"""

from __future__ import annotations

import logging
import shutil
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

from upres.clock import Clock, utc_now
from upres.domain.media import BROWSER_PLAYABLE, EncodeSettings, MediaLimits
from upres.domain.pricing import Pricing
from upres.domain.records import CallbackBody, Claim
from upres.domain.tasks import Factor, Task, TaskError, playable_key, preview_key
from upres.domain.uploads import kept_input_id, upload_id_of, upload_storage_key
from upres.errors import Cancelled, InputRefused, LeaseLost, MediaError, NotFound, UpresError
from upres.inputs.fetch import fetch
from upres.inputs.netpolicy import AddressPolicy
from upres.jobs.queue import ClaimedTasks
from upres.pipeline.engine import CancelToken, Progress, upscale_video
from upres.pipeline.frames import FrameUpscaler
from upres.pipeline.playable import playable_copy
from upres.pipeline.preview import FramePreview
from upres.storage.base import ResultStorage, result_key

log = logging.getLogger(__name__)

UpscalerFactory = Callable[[Factor], FrameUpscaler]
"""Gives the frame upscaler for a factor (models stay loaded between tasks)."""


@dataclass(frozen=True, kw_only=True)
class FetchLimits:
    """How much and how long the runner may download an input."""

    max_bytes: int
    timeout_s: float


class _Progress:
    """The latest progress and preview, shared by the pipeline threads and the heartbeat."""

    def __init__(self, preview_file: Path) -> None:
        self.preview = FramePreview()
        self.preview_file = preview_file
        self._lock = threading.Lock()
        self._percent = 0
        self._eta_s = 0
        self._fps: float | None = None

    def update(self, progress: Progress) -> None:
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


class TaskRunner:
    """Everything needed to run tasks; the constructor is its whole configuration."""

    def __init__(
        self,
        *,
        store: ClaimedTasks,
        storage: ResultStorage,
        policy: AddressPolicy,
        upscaler_for: UpscalerFactory,
        render: CallbackBody,
        work_dir: Path,
        pricing: Pricing,
        limits: MediaLimits,
        encode: EncodeSettings,
        fetch_limits: FetchLimits,
        heartbeat_s: float,
        result_ttl_s: int,
        double_rate: bool = False,
        clock: Clock = utc_now,
    ) -> None:
        self._store = store
        self._storage = storage
        self._policy = policy
        self._upscaler_for = upscaler_for
        self._render = render
        self._work_dir = work_dir
        self._pricing = pricing
        self._limits = limits
        self._encode = encode
        self._fetch_limits = fetch_limits
        self._heartbeat_s = heartbeat_s
        self._result_ttl_s = result_ttl_s
        self._double_rate = double_rate
        self._clock = clock

    def run(self, claim: Claim) -> Task | None:
        """Run ``claim`` to an outcome. Returns the settled task, or None when
        the task was cancelled or the lease lost (someone else settles it)."""
        scratch = self._work_dir / f"{claim.task.id}-{claim.attempt}"
        scratch.mkdir(parents=True, exist_ok=True)
        try:
            return self._run_guarded(claim, scratch)
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
            self._forget_preview(claim.task.id)

    def _run_guarded(self, claim: Claim, scratch: Path) -> Task | None:
        try:
            return self._execute(claim, scratch)
        except (Cancelled, LeaseLost) as exc:
            log.info("task %s attempt %d stopped: %s", claim.task.id, claim.attempt, exc)
            return None
        except (MediaError, InputRefused) as exc:
            return self._fail(claim, exc, retry=False)
        except UpresError as exc:
            return self._fail(claim, exc, retry=True)
        except Exception as exc:
            log.exception("task %s attempt %d crashed", claim.task.id, claim.attempt)
            return self._fail(claim, exc, retry=True)

    def _execute(self, claim: Claim, scratch: Path) -> Task:
        task = claim.task
        progress = _Progress(scratch / "preview.jpg")
        cancel = CancelToken()
        with self._heartbeat(claim, progress, cancel):
            source = self._input(task, scratch / "input")
            cancel.raise_if_cancelled()
            output = scratch / "output.mp4"
            result = upscale_video(
                source=source,
                destination=output,
                upscaler=self._upscaler_for(task.factor),
                encode=self._encode,
                limits=self._limits,
                on_progress=progress.update,
                cancel=cancel,
                double_rate=self._double_rate,
                on_frame=progress.preview.offer,
            )
        for note in result.notes:
            log.info("task %s: %s", task.id, note)
        megapixels = result.frames * result.width * result.height / 1e6
        return self._publish(
            claim,
            output,
            result.info.duration_s,
            megapixels / max(result.elapsed_s, 1e-3),
            notes=result.notes,
        )

    def _input(self, task: Task, dest: Path) -> Path:
        """The task's input as a local file: an upload is read from storage, and
        so is an input the API's probe already downloaded whole (kept under
        ``kept_input_id``); anything else is downloaded."""
        upload_id = upload_id_of(task.input_url)
        if upload_id is None:
            if self._read_kept_input(task, dest):
                return dest
            return fetch(
                task.input_url,
                dest,
                policy=self._policy,
                max_bytes=self._fetch_limits.max_bytes,
                timeout_s=self._fetch_limits.timeout_s,
            ).path
        try:
            self._storage.copy_to(upload_storage_key(upload_id), dest)
        except NotFound as exc:
            raise InputRefused("The uploaded video has expired") from exc
        return dest

    def _read_kept_input(self, task: Task, dest: Path) -> bool:
        """Copies the input the API kept for ``task`` to ``dest``; False when it kept none."""
        try:
            self._storage.copy_to(upload_storage_key(kept_input_id(task.id)), dest)
        except NotFound:
            return False
        return True

    def _publish(
        self,
        claim: Claim,
        output: Path,
        duration_s: float,
        mpix_per_s: float,
        *,
        notes: tuple[str, ...],
    ) -> Task:
        """Store the file under a name carrying the attempt, then settle (fenced) with ``notes``."""
        key = result_key(claim.task.id, claim.attempt)
        self._storage.put(output, key)
        if self._encode.codec not in BROWSER_PLAYABLE:
            self._store_playable(output, key)
        try:
            task = self._store.complete(
                claim,
                result_key=key,
                result_expires_at=self._clock() + timedelta(seconds=self._result_ttl_s),
                actual_duration_s=duration_s,
                # The price of what was made; the store caps it at the reservation.
                credits_charged=self._pricing.credits(
                    duration_s=duration_s, factor=claim.task.factor
                ),
                callback_body=self._render,
                notes=notes,
            )
        except LeaseLost:
            self._storage.delete(key)
            self._storage.delete(playable_key(key))
            raise
        self._store.record_throughput(claim.task.factor, mpix_per_s)
        return task

    def _store_playable(self, output: Path, key: str) -> None:
        """Store a small H.264 copy of ``output`` for browsers; it never fails a task."""
        copy = output.with_name("playable.mp4")
        try:
            playable_copy(output, copy)
            self._storage.put(copy, playable_key(key))
        except UpresError as exc:
            log.warning("no playable copy of %s: %s", key, exc.message)

    def _fail(self, claim: Claim, exc: BaseException, *, retry: bool) -> Task | None:
        error = _task_error(exc)
        log.warning("task %s attempt %d failed: %s", claim.task.id, claim.attempt, error.message)
        try:
            return self._store.fail(claim, error=error, retry=retry, callback_body=self._render)
        except LeaseLost:
            return None

    @contextmanager
    def _heartbeat(self, claim: Claim, progress: _Progress, cancel: CancelToken) -> Iterator[None]:
        stop = threading.Event()
        beat = threading.Thread(
            target=self._beat_until,
            args=(claim, progress, cancel, stop),
            name=f"heartbeat-{claim.task.id}",
            daemon=True,
        )
        beat.start()
        try:
            yield
        finally:
            stop.set()
            beat.join()
        cancel.raise_if_cancelled()

    def _beat_until(
        self, claim: Claim, progress: _Progress, cancel: CancelToken, stop: threading.Event
    ) -> None:
        while not stop.wait(self._heartbeat_s):
            percent, eta_s, fps = progress.read()
            try:
                beat = self._store.heartbeat(
                    claim, progress=percent, estimated_time_s=eta_s, fps=fps
                )
            except LeaseLost:
                log.warning("task %s attempt %d lost its lease", claim.task.id, claim.attempt)
                cancel.cancel()
                return
            except Exception:
                # A database hiccup: the lease still has time; try at the next beat.
                log.exception("heartbeat of task %s failed", claim.task.id)
                continue
            if beat.cancelled:
                cancel.cancel()
                return
            self._send_preview(claim, progress)

    def _send_preview(self, claim: Claim, progress: _Progress) -> None:
        """Store the newest preview JPEG, if any; a preview never fails a task."""
        jpeg = progress.preview.take_jpeg()
        if jpeg is None:
            return
        try:
            progress.preview_file.write_bytes(jpeg)
            self._storage.put(progress.preview_file, preview_key(claim.task.id))
        except Exception:
            log.exception("preview of task %s not stored", claim.task.id)

    def _forget_preview(self, task_id: str) -> None:
        try:
            self._storage.delete(preview_key(task_id))
        except Exception:
            log.exception("preview of task %s not deleted", task_id)


def _task_error(exc: BaseException) -> TaskError:
    """The string code and message a client sees on a failed task."""
    if isinstance(exc, UpresError):
        return TaskError(code=exc.code, message=exc.message)
    return TaskError(code="service_error", message="The upscaling service failed on this task")
