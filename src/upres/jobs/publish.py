"""Publishing a finished result: store it, settle the task (fenced), once.

The single-pass run and the join of a chunked task end here alike, so a
result is stored, copied for browsers and billed by the same rules.
"""

from __future__ import annotations

import logging
from datetime import timedelta
from pathlib import Path

from upres.clock import Clock, utc_now
from upres.domain.media import VideoCodec, needs_playable_copy
from upres.domain.pricing import Pricing
from upres.domain.records import CallbackBody, Claim
from upres.domain.storage_keys import playable_key, preview_key, result_key
from upres.domain.tasks import Task
from upres.errors import LeaseLost, UpresError
from upres.jobs.queue import ClaimedTasks
from upres.models.registry import task_network
from upres.pipeline.playable import playable_copy
from upres.pipeline.preview import FramePreview
from upres.storage.base import ResultStorage

log = logging.getLogger(__name__)


class Publisher:
    """Stores results and settles their tasks, and records the speeds measured
    running them; the constructor is its whole configuration.

    ``default_model`` is the network a task that names none runs (``UPRES_MODEL``;
    None: the registry's default for its factor), as the worker's upscalers run it.
    """

    def __init__(
        self,
        *,
        store: ClaimedTasks,
        storage: ResultStorage,
        render: CallbackBody,
        pricing: Pricing,
        result_ttl_s: int,
        default_model: str | None,
        clock: Clock = utc_now,
    ) -> None:
        self._store = store
        self._storage = storage
        self._render = render
        self._pricing = pricing
        self._result_ttl_s = result_ttl_s
        self._default_model = default_model
        self._clock = clock

    def publish(
        self,
        claim: Claim,
        output: Path,
        duration_s: float,
        *,
        codec: VideoCodec,
        notes: tuple[str, ...],
        mpix_per_s: float | None,
    ) -> Task:
        """Store ``output`` (written in ``codec``) under a name carrying the
        attempt, with a playable copy when ``codec`` needs one, then settle
        (fenced) with ``notes``, charging ``duration_s`` of input; record the
        speed when given.

        Raises LeaseLost (and leaves nothing stored, charges nothing) when fenced out.
        """
        key = result_key(claim.task.id, claim.attempt)
        self._storage.put(output, key)
        if needs_playable_copy(codec):
            self._store_playable(output, key)
        try:
            task = self._store.complete(
                claim,
                result_key=key,
                result_expires_at=self._clock() + timedelta(seconds=self._result_ttl_s),
                actual_duration_s=duration_s,
                # The price of what was made; the store caps it at the reservation.
                credits_charged=self._pricing.credits(
                    duration_s=duration_s,
                    factor=claim.task.factor,
                    network=claim.task.network,
                    frame_rate=claim.task.frame_rate_request,
                ),
                callback_body=self._render,
                notes=notes,
                result_codec=codec,
            )
        except LeaseLost:
            self._storage.delete(key)
            self._storage.delete(playable_key(key))
            raise
        if mpix_per_s is not None:
            self.record_speed(claim.task, mpix_per_s)
        return task

    def record_speed(self, task: Task, mpix_per_s: float) -> None:
        """Fold a speed measured running ``task`` (or a chunk of it) into the
        estimates, under the network it ran (``task_network``).

        Raises UnknownModel when the task names no network and ``default_model``
        is not registered (the worker could not have run it either).
        """
        network = task_network(task.factor, network=task.network, default_model=self._default_model)
        self._store.record_throughput(task.factor, network, mpix_per_s)

    def _store_playable(self, output: Path, key: str) -> None:
        """Store a small H.264 copy of ``output`` for browsers; it never fails a task."""
        copy = output.with_name("playable.mp4")
        try:
            playable_copy(output, copy)
            self._storage.put(copy, playable_key(key))
        except UpresError as exc:
            log.warning("no playable copy of %s: %s", key, exc.message)


def store_preview(storage: ResultStorage, preview: FramePreview, file: Path, task_id: str) -> None:
    """Store the newest preview JPEG of a running task (through ``file``), if
    there is one; a preview never fails a task or a chunk."""
    jpeg = preview.take_jpeg()
    if jpeg is None:
        return
    try:
        file.write_bytes(jpeg)
        storage.put(file, preview_key(task_id))
    except Exception:
        log.exception("preview of task %s not stored", task_id)
