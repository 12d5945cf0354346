"""One measured case, run alone in a fresh process so its peak memory is its own.

Every case loads the model and warms it up on one frame of the clip's size
before the clock starts (a worker keeps its model loaded), then times one
thing: the real pipeline (``e2e``), the model on frames decoded beforehand
(``model``), decoding alone (``decode``), encoding alone (``encode``), or the
naive loop (``baseline``: one fp32 frame at a time, decode -> infer ->
encode in sequence on one thread, like the reference inference scripts).
"""

from __future__ import annotations

import resource
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Literal, cast

import psutil
import torch
from torch import nn

from upres.domain.media import EncodeSettings, MediaLimits, VideoInfo
from upres.domain.tasks import Factor
from upres.inputs.probe import probe
from upres.models.loader import ModelCache
from upres.models.registry import get_model
from upres.models.specs import Architecture, ModelSpec
from upres.pipeline.bidirectional import BidirectionalUpscaler
from upres.pipeline.colorimetry import conversion_for
from upres.pipeline.decode import DecodeOptions, TimedBatch, decode
from upres.pipeline.encode import encode
from upres.pipeline.engine import upscale_video
from upres.pipeline.frames import FrameBatch, FrameUpscaler
from upres.pipeline.output_plan import plan_output
from upres.pipeline.recurrent import RecurrentNetworks
from upres.pipeline.upscale import InterpolationUpscaler, ModelUpscaler
from upres.pipeline.video_run import VideoOptions

CaseKind = Literal["e2e", "model", "decode", "encode", "baseline"]
KINDS: tuple[CaseKind, ...] = ("decode", "encode", "model", "e2e", "baseline")
_LIMITS = MediaLimits()
_USES_MODEL = frozenset({"e2e", "model", "baseline"})


@dataclass(frozen=True, kw_only=True)
class Case:
    """What one child process measures. ``half``/``batch`` None keep the engine's defaults.

    ``channels_last``, ``compile`` (torch.compile, max-autotune) and
    ``cudnn_benchmark`` try fast paths the engine does not take by itself; the
    baseline never uses them.
    """

    kind: CaseKind
    clip: str
    model: str
    factor: int
    device: str
    half: bool | None = None
    batch: int | None = None
    torch_threads: int | None = None
    encoder_threads: int = 0
    encoder_preset: str | None = None
    channels_last: bool = False
    compile: bool = False
    cudnn_benchmark: bool = False


@dataclass(frozen=True, kw_only=True)
class Measurement:
    """What one case measured: ``seconds`` for ``frames`` frames of ``out_width``x``out_height``.

    ``warm_rss_mb`` is the resident memory once the model is loaded and warm,
    just before the clock starts; ``peak_rss_mb`` the process's peak;
    ``cpu_seconds`` the CPU time all its threads used while timed (on a
    shared machine it shows the work, which waiting for a core does not change).
    """

    kind: CaseKind
    frames: int
    seconds: float
    out_width: int
    out_height: int
    peak_rss_mb: float
    warm_rss_mb: float
    cpu_seconds: float
    peak_gpu_mb: float | None
    dtype: str
    batch: int


def run(case: Case) -> Measurement:
    """Measure ``case`` in this process."""
    if case.torch_threads:
        torch.set_num_threads(case.torch_threads)
    upscaler = _upscaler(case)
    source = Path(case.clip)
    info = probe(source, limits=_LIMITS)
    if case.kind in _USES_MODEL:
        _warm_up(upscaler, info)
    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()
    warm_rss_mb = psutil.Process().memory_info().rss / 2**20
    frames, clock = _MEASURES[case.kind](case, upscaler, info)
    return Measurement(
        kind=case.kind,
        frames=frames,
        seconds=clock.wall,
        out_width=info.width * case.factor // 2 * 2,
        out_height=info.height * case.factor // 2 * 2,
        peak_rss_mb=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        warm_rss_mb=warm_rss_mb,
        cpu_seconds=clock.cpu,
        peak_gpu_mb=_peak_gpu_mb(),
        dtype=str(upscaler.dtype).removeprefix("torch."),
        batch=upscaler.batch_size,
    )


def as_dict(measurement: Measurement) -> dict[str, object]:
    return asdict(measurement)


def _upscaler(case: Case) -> ModelUpscaler | BidirectionalUpscaler:
    baseline = case.kind == "baseline"
    spec = get_model(case.model)
    if spec.architecture is Architecture.BASICVSR:
        # The baseline sees one frame at a time: a window of one.
        return BidirectionalUpscaler(
            spec,
            Factor(case.factor),
            networks=RecurrentNetworks(),
            device=case.device,
            half=False if baseline else case.half,
            window=1 if baseline else case.batch,
        )
    torch.backends.cudnn.benchmark = case.cudnn_benchmark and not baseline
    models = ModelCache() if baseline else TunedModels(case)
    return ModelUpscaler(
        get_model(case.model),
        Factor(case.factor),
        device=case.device,
        models=models,
        half=False if baseline else case.half,
        batch_size=1 if baseline else case.batch,
    )


class TunedModels:
    """A ``NetworkSource`` giving the cached networks in channels_last and/or compiled."""

    def __init__(self, case: Case) -> None:
        self._cache = ModelCache()
        self._case = case
        self._tuned: dict[tuple[str, str, torch.dtype], nn.Module] = {}

    def network(self, spec: ModelSpec, device: torch.device, dtype: torch.dtype) -> nn.Module:
        key = (spec.id, str(device), dtype)
        if key not in self._tuned:
            network = self._cache.network(spec, device, dtype)
            if self._case.channels_last:
                network = network.to(memory_format=torch.channels_last)
            if self._case.compile:
                network = cast(nn.Module, torch.compile(network, mode="max-autotune"))
            self._tuned[key] = network
        return self._tuned[key]


def _warm_up(upscaler: ModelUpscaler | BidirectionalUpscaler, info: VideoInfo) -> None:
    """Load the model and let the backend pick its kernels for this frame size."""
    frames = torch.zeros((upscaler.batch_size, info.height, info.width, 3), dtype=torch.uint8)
    upscaler.upscale(frames)
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def _cpu_seconds() -> float:
    """CPU time of every thread of this process so far (user + system)."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


class Clock:
    """Wall and CPU seconds of a ``with`` block."""

    wall: float = 0.0
    cpu: float = 0.0

    def __enter__(self) -> Clock:
        self.wall, self.cpu = time.perf_counter(), _cpu_seconds()
        return self

    def __exit__(self, *exc: object) -> None:
        self.wall, self.cpu = time.perf_counter() - self.wall, _cpu_seconds() - self.cpu


def _peak_gpu_mb() -> float | None:
    if not torch.cuda.is_available():
        return None
    return torch.cuda.max_memory_allocated() / 2**20


def decode_options(info: VideoInfo, batch: int, *, hardware: bool) -> DecodeOptions:
    """The decode options ``upscale_video`` would use (same conversion, same batching)."""
    return DecodeOptions.for_video(info, batch_size=batch, hardware=hardware)


def timed_batches(source: Path, options: DecodeOptions) -> Iterator[TimedBatch]:
    for item in decode(source, options=options):
        if isinstance(item, TimedBatch):
            yield item


def _encode_settings(case: Case) -> EncodeSettings:
    return EncodeSettings(threads=case.encoder_threads, preset=case.encoder_preset)


def _measure_e2e(case: Case, upscaler: FrameUpscaler, info: VideoInfo) -> tuple[int, Clock]:
    with tempfile.TemporaryDirectory(prefix="upres-bench-") as folder, Clock() as clock:
        result = upscale_video(
            source=Path(case.clip),
            destination=Path(folder) / "out.mp4",
            upscaler=upscaler,
            options=VideoOptions(encode=_encode_settings(case), limits=_LIMITS),
        )
    return result.frames, clock


def _measure_model(case: Case, upscaler: FrameUpscaler, info: VideoInfo) -> tuple[int, Clock]:
    options = decode_options(info, upscaler.batch_size, hardware=False)
    inputs = [batch.frames.pixels for batch in timed_batches(Path(case.clip), options)]
    with Clock() as clock:
        for pixels in inputs:
            upscaler.upscale(pixels)
    return sum(len(p) for p in inputs), clock


def _measure_decode(case: Case, upscaler: FrameUpscaler, info: VideoInfo) -> tuple[int, Clock]:
    options = decode_options(info, upscaler.batch_size, hardware=torch.cuda.is_available())
    with Clock() as clock:
        frames = sum(batch.frames.count for batch in timed_batches(Path(case.clip), options))
    return frames, clock


def _measure_encode(case: Case, upscaler: FrameUpscaler, info: VideoInfo) -> tuple[int, Clock]:
    """Encode bicubic-upscaled frames (prepared before the clock starts) at the output size."""
    resizer = InterpolationUpscaler(Factor(case.factor))
    options = decode_options(info, 1, hardware=False)
    ready = [resized(batch, resizer) for batch in timed_batches(Path(case.clip), options)]
    with tempfile.TemporaryDirectory(prefix="upres-bench-") as folder, Clock() as clock:
        _encode(case, info, iter(ready), Path(folder) / "out.mp4")
    return len(ready), clock


def _measure_baseline(case: Case, upscaler: FrameUpscaler, info: VideoInfo) -> tuple[int, Clock]:
    """Decode one frame, upscale it, encode it, then the next: nothing overlaps."""
    options = decode_options(info, 1, hardware=False)
    upscaled = (resized(batch, upscaler) for batch in timed_batches(Path(case.clip), options))
    with tempfile.TemporaryDirectory(prefix="upres-bench-") as folder, Clock() as clock:
        frames = _encode(case, info, upscaled, Path(folder) / "out.mp4")
    return frames, clock


def resized(timed: TimedBatch, upscaler: FrameUpscaler) -> TimedBatch:
    frames = timed.frames
    pixels = upscaler.upscale(frames.pixels)
    batch = FrameBatch(pixels=pixels, pts=frames.pts, first_index=frames.first_index)
    return TimedBatch(frames=batch, durations=timed.durations)


def _encode(case: Case, info: VideoInfo, batches: Iterator[TimedBatch], target: Path) -> int:
    conversion = conversion_for(info.color, pix_fmt=info.pix_fmt, height=info.height)
    plan = plan_output(
        info, factor=case.factor, conversion=conversion, settings=_encode_settings(case)
    )
    written = 0

    def count(frames: int) -> None:
        nonlocal written
        written += frames

    encode(Path(case.clip), target, batches, plan=plan, on_batch=count)
    return written


_MEASURES: dict[CaseKind, Callable[[Case, ModelUpscaler, VideoInfo], tuple[int, Clock]]] = {
    "e2e": _measure_e2e,
    "model": _measure_model,
    "decode": _measure_decode,
    "encode": _measure_encode,
    "baseline": _measure_baseline,
}

__all__ = [
    "KINDS",
    "Case",
    "CaseKind",
    "Clock",
    "Measurement",
    "as_dict",
    "decode_options",
    "resized",
    "run",
    "timed_batches",
]
