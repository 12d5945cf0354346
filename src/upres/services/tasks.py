"""Task use cases: submit (validate, probe, price, reserve, insert), get, cancel.

All request validation of the spec lives here; the HTTP layer only checks the
JSON shape and hands over a ``Submission``.
"""

from __future__ import annotations

import hashlib
import json
import math
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Protocol

from upres.clock import Clock, utc_now
from upres.domain.accounts import ApiKey
from upres.domain.framerate import FrameRateRequest
from upres.domain.media import VideoInfo
from upres.domain.pricing import Pricing
from upres.domain.records import (
    IDEMPOTENCY_WINDOW,
    CallbackBody,
    IdempotencyRecord,
    IdempotentHit,
    NewTask,
)
from upres.domain.tasks import API_MODEL, Factor, Task, check_task_id, new_task_id
from upres.domain.uploads import Upload, is_upload_url
from upres.errors import (
    INSUFFICIENT_QUOTA_MESSAGE,
    PROBE_FAILED_MESSAGE,
    FetchError,
    IdempotencyConflict,
    InsufficientQuota,
    InvalidRequest,
    ModelAccessDenied,
    UnknownDuration,
)
from upres.services.credits import AccountLookup
from upres.services.estimates import ProbedVideo, ThroughputEstimator, ThroughputSource
from upres.services.looks import Look, choose_look
from upres.services.retiming import check_frame_rate

MISSING_VIDEO_MESSAGE = f"video_urls is required and must not be empty for {API_MODEL}"
IDEMPOTENCY_CONFLICT_MESSAGE = "Idempotency-Key was already used with a different request"


class VideoProber(Protocol):
    """Reads a remote video's facts. Raises FetchError, MediaError or AddressNotAllowed."""

    def probe_url(self, url: str, *, whole_body: Path | None = None) -> VideoInfo:
        """A body the server sent whole (it ignores Range) is left in ``whole_body``."""
        ...


class UploadLookup(Protocol):
    """Finds the upload an ``upres-upload://`` URL names, probed when it arrived, and
    keeps an input its probe downloaded whole (``upres.services.uploads.UploadService``)."""

    def upload_for(self, *, account_id: str, url: str) -> ProbedVideo:
        """Raises FetchError when the account has no such upload (or it expired)."""
        ...

    def scratch_file(self) -> AbstractContextManager[Path]: ...

    def keep_input(self, *, task: NewTask, path: Path, info: ProbedVideo) -> Upload | None: ...

    def discard(self, upload: Upload) -> None: ...


class UrlChecker(Protocol):
    """The URL policy (``upres.inputs.urlpolicy.UrlPolicy``): the same checks as at send time."""

    def check_input_url(self, url: str) -> str:
        """``url``. Raises InvalidUrl when the HTTP client would not fetch it."""
        ...

    def check_callback_url(self, url: str) -> None:
        """Raises InvalidUrl, InvalidRequest or AddressNotAllowed when ``url`` may not be called."""
        ...


@dataclass(frozen=True, kw_only=True)
class Submission:
    """A create request as the client sent it (factor already leniently parsed;
    ``network``, ``denoise``, ``frame_rate`` and ``slowmo`` None when not sent)."""

    model: str
    video_urls: list[str]
    factor: Factor
    callback_url: str | None
    network: str | None = None
    denoise: int | None = None
    frame_rate: float | None = None
    slowmo: int | None = None

    def fingerprint(self) -> str:
        """A hash of what the request asks for, to tell an idempotent replay from a reuse.

        The look and the frame rate count only when sent: a request that sends none
        of them hashes as it did before tasks chose, so its replays still match.
        """
        fields: dict[str, object] = {
            "model": self.model,
            "video_urls": list(self.video_urls),
            "factor": int(self.factor),
            "callback_url": self.callback_url,
        }
        chosen = {
            "network": self.network,
            "denoise": self.denoise,
            "frame_rate": self.frame_rate,
            "slowmo": self.slowmo,
        }
        fields.update({name: value for name, value in chosen.items() if value is not None})
        return hashlib.sha256(json.dumps(fields, sort_keys=True).encode()).hexdigest()


@dataclass(frozen=True, kw_only=True)
class Submitted:
    """The task of a submission; ``replayed`` when an Idempotency-Key matched an earlier one."""

    task: Task
    replayed: bool


@dataclass(frozen=True, kw_only=True)
class Estimate:
    """What a submission would cost and take, without reserving anything."""

    factor: Factor
    look: Look
    frame_rate: FrameRateRequest
    video_duration_s: float
    credits: float
    estimated_time_s: int


class TaskRecords(AccountLookup, ThroughputSource, Protocol):
    """Tasks as clients see them: what ``TaskService`` needs."""

    def create_task(self, new: NewTask, *, idempotency: IdempotencyRecord | None = None) -> Task:
        """Insert a pending task and reserve its credits atomically.

        Raises InsufficientQuota when the balance does not cover the reservation,
        IdempotencyConflict when another submission just claimed the same key.
        """
        ...

    def find_idempotent(
        self, *, account_id: str, key: str, since: datetime
    ) -> IdempotentHit | None:
        """The submission made with ``key`` at or after ``since``, if any."""
        ...

    def get_task(self, task_id: str, *, account_id: str | None = None) -> Task:
        """Raises TaskNotFound when absent or owned by another account."""
        ...

    def list_tasks(self, *, account_id: str, limit: int) -> list[Task]:
        """The account's ``limit`` newest tasks, newest first."""
        ...

    def cancel_task(self, task_id: str, *, account_id: str, callback_body: CallbackBody) -> Task:
        """Cancel a pending or processing task now, refund it, queue its callback.

        Raises TaskNotFound as ``get_task``; TaskNotCancellable when it already ended.
        """
        ...


class TaskService:
    """Submit, read and cancel tasks on behalf of an authenticated key."""

    def __init__(
        self,
        *,
        store: TaskRecords,
        prober: VideoProber,
        pricing: Pricing,
        urls: UrlChecker,
        callback_body: CallbackBody,
        clock: Clock = utc_now,
        estimator: ThroughputEstimator | None = None,
        uploads: UploadLookup | None = None,
        default_model: str | None = None,
    ) -> None:
        """``default_model`` is the network a submission that names none gets
        (``UPRES_MODEL``; None: the registry's for its factor)."""
        self._store = store
        self._prober = prober
        self._pricing = pricing
        self._urls = urls
        self._callback_body = callback_body
        self._clock = clock
        self._estimator = estimator or ThroughputEstimator(store)
        self._uploads = uploads
        self._default_model = default_model

    def submit(self, *, key: ApiKey, submission: Submission) -> Task:
        """Validate, probe, price and enqueue a submission; its credits are reserved.

        Raises InvalidRequest (bad model, video_urls, callback_url, network, denoise,
        frame_rate or slowmo),
        AddressNotAllowed, ModelAccessDenied, the prober's FetchError or
        MediaError (code video_probe_failed and friends), InsufficientQuota.
        """
        return self._submit(key, submission, idempotency=None)

    def submit_idempotent(
        self, *, key: ApiKey, submission: Submission, idempotency_key: str | None
    ) -> Submitted:
        """``submit``, replaying the first task when ``idempotency_key`` was used
        with the same request in the last 24 hours. An empty key is no key (a
        client sending the header blank means none, not one key shared by all).

        Raises what ``submit`` raises, and IdempotencyConflict when the key was
        used with a different request.
        """
        if not idempotency_key:
            return Submitted(task=self.submit(key=key, submission=submission), replayed=False)
        record = IdempotencyRecord(key=idempotency_key, request_hash=submission.fingerprint())
        hit = self._store.find_idempotent(
            account_id=key.account_id, key=idempotency_key, since=self._clock() - IDEMPOTENCY_WINDOW
        )
        if hit is None:
            return Submitted(task=self._submit(key, submission, idempotency=record), replayed=False)
        if hit.request_hash != record.request_hash:
            raise IdempotencyConflict(IDEMPOTENCY_CONFLICT_MESSAGE)
        return Submitted(task=hit.task, replayed=True)

    def estimate(self, *, key: ApiKey, submission: Submission) -> Estimate:
        """What ``submit`` would reserve and how long the task would take; reserves
        nothing. Raises what ``submit`` raises, except InsufficientQuota."""
        _, info, look = self._checked(key, submission)
        frame_rate = _frame_rate(submission, info)
        return Estimate(
            factor=submission.factor,
            look=look,
            frame_rate=frame_rate,
            video_duration_s=info.duration_s,
            credits=self._price(info, submission.factor, look, frame_rate),
            estimated_time_s=self._estimator.estimate(
                info, submission.factor, look.network, frame_rate
            ),
        )

    def list(self, *, key: ApiKey, limit: int) -> list[Task]:
        """The key's account's ``limit`` newest tasks, newest first."""
        return self._store.list_tasks(account_id=key.account_id, limit=limit)

    def get(self, *, key: ApiKey, task_id: str) -> Task:
        """Raises InvalidTaskId for a malformed id, TaskNotFound for an unknown or foreign one."""
        return self._store.get_task(check_task_id(task_id), account_id=key.account_id)

    def cancel(self, *, key: ApiKey, task_id: str) -> Task:
        """Cancel and refund a pending or processing task.

        Raises InvalidTaskId, TaskNotFound, TaskNotCancellable once it has ended.
        """
        return self._store.cancel_task(
            check_task_id(task_id), account_id=key.account_id, callback_body=self._callback_body
        )

    def _submit(
        self, key: ApiKey, submission: Submission, *, idempotency: IdempotencyRecord | None
    ) -> Task:
        with self._whole_body() as whole_body:
            url, info, look = self._checked(key, submission, affordable=True, whole_body=whole_body)
            new = self._new_task(key, submission, look, url, info)
            # Kept before the task exists: a worker may claim it the moment it does.
            kept = self._keep_input(new, whole_body, info)
            try:
                return self._store.create_task(new, idempotency=idempotency)
            except BaseException:
                if kept is not None and self._uploads is not None:
                    self._uploads.discard(kept)
                raise

    def _whole_body(self) -> AbstractContextManager[Path | None]:
        """Where a probe leaves an input it had to download whole; None: nowhere."""
        return nullcontext() if self._uploads is None else self._uploads.scratch_file()

    def _keep_input(
        self, new: NewTask, whole_body: Path | None, info: ProbedVideo
    ) -> Upload | None:
        if whole_body is None or self._uploads is None:
            return None
        return self._uploads.keep_input(task=new, path=whole_body, info=info)

    def _checked(
        self,
        key: ApiKey,
        submission: Submission,
        *,
        affordable: bool = False,
        whole_body: Path | None = None,
    ) -> tuple[str, ProbedVideo, Look]:
        """The submission's validated input URL, its probed facts and its look; an
        input the probe had to download whole is left in ``whole_body``."""
        check_model(key, submission.model)
        look = self._look(submission)
        asked = check_frame_rate(frame_rate=submission.frame_rate, slowmo=submission.slowmo)
        url = one_video_url(submission.video_urls)
        if not is_upload_url(url):  # a name, not an address: checked by ownership instead
            url = self._urls.check_input_url(url)
        if submission.callback_url is not None:
            self._urls.check_callback_url(submission.callback_url)
        if affordable:
            self._check_affordable(key, submission.factor, look, asked)
        info = self._probe(key, url, whole_body)
        check_duration(info)
        _frame_rate(submission, info)
        return url, info, look

    def _probe(self, key: ApiKey, url: str, whole_body: Path | None) -> ProbedVideo:
        if not is_upload_url(url):
            return self._prober.probe_url(url, whole_body=whole_body)
        if self._uploads is None:
            raise FetchError("Uploads are not available on this server")
        return self._uploads.upload_for(account_id=key.account_id, url=url)

    def _look(self, submission: Submission) -> Look:
        return choose_look(
            network=submission.network,
            denoise=submission.denoise,
            factor=submission.factor,
            default_model=self._default_model,
        )

    def _price(
        self, info: ProbedVideo, factor: Factor, look: Look, frame_rate: FrameRateRequest
    ) -> float:
        return self._pricing.credits(
            duration_s=info.duration_s, factor=factor, network=look.network, frame_rate=frame_rate
        )

    def _check_affordable(
        self, key: ApiKey, factor: Factor, look: Look, frame_rate: FrameRateRequest
    ) -> None:
        # Fail fast, before fetching anything, when not even one second is covered;
        # the reservation itself is the authoritative check.
        cheapest = self._pricing.credits(
            duration_s=1, factor=factor, network=look.network, frame_rate=frame_rate
        )
        if self._store.get_account(key.account_id).balance < cheapest:
            raise InsufficientQuota(INSUFFICIENT_QUOTA_MESSAGE)

    def _new_task(
        self, key: ApiKey, submission: Submission, look: Look, url: str, info: ProbedVideo
    ) -> NewTask:
        now = self._clock()
        frame_rate = _frame_rate(submission, info)
        return NewTask(
            id=new_task_id(int(now.timestamp())),
            account_id=key.account_id,
            model=submission.model,
            factor=submission.factor,
            input_url=url,
            callback_url=submission.callback_url,
            video_duration_s=info.duration_s,
            credits_reserved=self._price(info, submission.factor, look, frame_rate),
            estimated_time_s=self._estimator.estimate(
                info, submission.factor, look.network, frame_rate
            ),
            user_group=key.user_group,
            created_at=now,
            network=look.network,
            denoise=look.denoise,
            frame_rate=submission.frame_rate,
            slowmo=submission.slowmo,
        )


def _frame_rate(submission: Submission, info: ProbedVideo) -> FrameRateRequest:
    """The submission's frame rate checked against the probed source's.

    Raises InvalidRequest as ``check_frame_rate``."""
    return check_frame_rate(
        frame_rate=submission.frame_rate, slowmo=submission.slowmo, source_fps=info.average_fps
    )


def check_model(key: ApiKey, model: str) -> None:
    """Raises InvalidRequest for an unknown model, ModelAccessDenied for a forbidden one."""
    if model != API_MODEL:
        raise InvalidRequest(
            f"Invalid model: {model!r}; supported models: {API_MODEL}", param="model"
        )
    if not key.may_use(model):
        raise ModelAccessDenied(f"Token does not have access to model: {model}")


def check_duration(info: ProbedVideo) -> None:
    """Raises UnknownDuration unless the probe found a positive, finite duration."""
    if not (math.isfinite(info.duration_s) and info.duration_s > 0):
        raise UnknownDuration(PROBE_FAILED_MESSAGE)


def one_video_url(video_urls: list[str]) -> str:
    """The one input URL. Raises InvalidRequest unless there is exactly one."""
    if not video_urls:
        raise InvalidRequest(MISSING_VIDEO_MESSAGE, param="video_urls")
    if len(video_urls) > 1:
        raise InvalidRequest(
            f"Only 1 video per request is supported for {API_MODEL}", param="video_urls"
        )
    return video_urls[0]
