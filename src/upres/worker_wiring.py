"""The composition root's worker half: models, the pipeline and the task runner.

Kept apart from ``upres.wiring`` because it imports torch and the engine: the
API processes and ``upres keys`` import only ``upres.wiring`` and never load
them. Entry points that run workers (``upres serve``, ``upres worker``, worker
processes and actors, ``upres upscale``) call these.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch

from upres.api.schemas import TaskRenderer
from upres.config import Settings
from upres.domain.framerate import FrameRateRequest
from upres.domain.media import EncodeSettings
from upres.domain.tasks import Factor, Task
from upres.errors import ModelError
from upres.jobs.chunk_runner import FrameRateFactory
from upres.jobs.claim_loop import ClaimLoop
from upres.jobs.input_cache import FetchLimits, InputCache
from upres.jobs.publish import Publisher
from upres.jobs.runner import RunnerStore, TaskRunner
from upres.models.devices import settings_device
from upres.models.registry import model_for, resolve_model, task_network
from upres.models.specs import ModelSpec
from upres.pipeline.frames import FrameUpscaler
from upres.pipeline.interpolate import FrameRateStage, interpolates_first, rife_interpolator
from upres.pipeline.motion import FlowMethod
from upres.pipeline.runtimes import Placement, encoding_for, place
from upres.pipeline.temporal import TemporalStage
from upres.pipeline.upscaler_cache import UpscalerCache, UpscalerFactory, UpscalerKey
from upres.storage import build_storage
from upres.wiring import address_policy, open_store


def apply_torch_threads(settings: Settings) -> None:
    """Limit torch's CPU threads when asked: on a CPU shared with other busy
    processes, more OpenMP threads than free cores stall on barriers (see
    docs/BENCHMARKS.md, step C5)."""
    if settings.torch_threads is not None:
        torch.set_num_threads(settings.torch_threads)


def upscalers(settings: Settings) -> UpscalerFactory:
    """The one way upscalers are built (the service's workers, ``upres upscale`` and
    its chunk workers). The upscaler for each task: its network (a task that names none gets
    ``settings.model`` or the registry's default for its factor), on the
    runtime ``place`` picks, built on first use and kept among the few most
    used (``UpscalerCache``; a recurrent model is built fresh for each video:
    it carries the video's state); with ``UPRES_TEMPORAL`` each call wraps it
    in a fresh temporal stabiliser (one per video). Raises UnknownModel for an
    unknown ``settings.model``."""
    for factor in Factor:  # an unknown UPRES_MODEL fails as the worker starts
        model_for(factor, settings.model)
    cache = UpscalerCache()
    stages: dict[torch.device, TemporalStage | None] = {}

    def upscaler_for(
        factor: Factor, *, network: str | None = None, denoise: int | None = None
    ) -> FrameUpscaler:
        spec, where = _task_model(settings, factor, network=network, denoise=denoise)
        key = UpscalerKey(network=spec.id, denoise=denoise, factor=factor, placement=where)
        upscaler = cache.upscaler(spec, key)
        if where.torch_device not in stages:
            stages[where.torch_device] = temporal_stage(settings, where.torch_device)
        stage = stages[where.torch_device]
        return upscaler if stage is None else stage.wrap(upscaler)

    return upscaler_for


def _task_model(
    settings: Settings, factor: Factor, *, network: str | None, denoise: int | None
) -> tuple[ModelSpec, Placement]:
    """The network a task runs (``task_network``) at its denoise level, and where it
    runs: the upscaler and the RIFE beside it are placed by this one answer.

    Raises UnknownModel, UnsupportedDenoise, and ModelError as ``settings_device``.
    """
    spec = resolve_model(
        task_network(factor, network=network, default_model=settings.model), denoise
    )
    return spec, place(spec, settings_device(settings))


def frame_rate_stage(
    settings: Settings,
    request: FrameRateRequest,
    factor: Factor,
    *,
    network: str | None = None,
    denoise: int | None = None,
) -> FrameRateStage | None:
    """The frame-rate stage ``request`` asks for (None when it keeps the source's timing):
    RIFE beside the model (``network``, else the one ``upscalers`` gives ``factor``; on
    CUDA with it, else on the CPU), before or after it as ``interpolates_first`` decides
    for the model and factor. Raises ModelError as ``settings_device`` and when RIFE's
    checkpoint is not installed, UnknownModel for an unknown id."""
    if not request.retimes:
        return None
    spec, where = _task_model(settings, factor, network=network, denoise=denoise)
    return FrameRateStage(
        request=request,
        interpolator=rife_interpolator(where.torch_device),
        before_upscale=interpolates_first(spec, factor),
    )


def frame_rates(settings: Settings) -> FrameRateFactory:
    """The frame-rate stage of each task: the rate and slow motion it chose, with RIFE
    beside its own network (``frame_rate_stage``); None for a task that chose neither."""

    def frame_rate_for(task: Task) -> FrameRateStage | None:
        return frame_rate_stage(
            settings,
            task.frame_rate_request,
            task.factor,
            network=task.network,
            denoise=task.denoise,
        )

    return frame_rate_for


def temporal_stage(settings: Settings, device: torch.device) -> TemporalStage | None:
    """The temporal stage ``settings`` ask for (``UPRES_TEMPORAL``, or ``upres upscale
    --temporal``) on ``device`` (the model's); None when it is off."""
    if not settings.temporal:
        return None
    return TemporalStage(FlowMethod(settings.temporal_flow), device)


def output_encoding(settings: Settings) -> EncodeSettings:
    """The configured encoding, kept up with the factors' models (``encoding_for``)."""
    specs = [model_for(factor, settings.model) for factor in Factor]
    try:
        target = settings_device(settings)
    except ModelError:
        # The device is missing: each task fails with that error when it starts.
        return settings.encode_settings
    return encoding_for(settings.encode_settings, specs, target)


def task_runner(settings: Settings, store: RunnerStore, inputs: InputCache) -> TaskRunner:
    storage = build_storage(settings)
    render = TaskRenderer(storage.url)
    encode = output_encoding(settings)
    return TaskRunner(
        store=store,
        storage=storage,
        inputs=inputs,
        upscaler_for=upscalers(settings),
        frame_rate_for=frame_rates(settings),
        render=render,
        publisher=Publisher(
            store=store,
            storage=storage,
            render=render,
            pricing=settings.pricing,
            result_ttl_s=settings.result_ttl_s,
            default_model=settings.model,
        ),
        work_dir=settings.data_dir / "work",
        limits=settings.media_limits,
        encode=encode,
        chunk_encode=settings.encode_settings,
        double_rate=settings.deinterlace_double_rate,
        heartbeat_s=settings.heartbeat_s,
        chunk_seconds=settings.chunk_seconds,
    )


def input_cache(settings: Settings, *, worker_id: str) -> InputCache:
    """A worker's own cache of task inputs under the data directory."""
    return InputCache(
        storage=build_storage(settings),
        policy=address_policy(settings),
        limits=FetchLimits(max_bytes=settings.max_input_bytes, timeout_s=settings.fetch_timeout_s),
        directory=settings.data_dir / "work" / "inputs" / worker_id,
    )


@contextmanager
def worker_from_settings(settings: Settings, *, worker_id: str) -> Iterator[ClaimLoop]:
    """A worker with its own store connection and input cache, both closed
    when the block ends."""
    apply_torch_threads(settings)
    store = open_store(settings)
    inputs = input_cache(settings, worker_id=worker_id)
    try:
        yield ClaimLoop(
            store=store,
            runner=task_runner(settings, store, inputs),
            worker_id=worker_id,
            lease_s=settings.lease_s,
        )
    finally:
        inputs.clear()
        store.close()
