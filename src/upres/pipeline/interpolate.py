"""The frame-rate stage: source frames at their own times -> frames on a constant grid.

Output frame ``k`` is shown at ``origin + k * step`` (``step`` = 1 / rate) and
shows the source at ``origin + k * step / slowmo``, where ``origin`` is the
video stream's start. A grid time that falls on a source frame is that frame,
untouched; one between two source frames is synthesised by the interpolator
at its fraction of the gap between their real timestamps (a variable frame
rate stays true to motion speed), unless the two frames are two shots
(``upres.pipeline.scenecut``): then the nearer one is repeated. Grid times
after the last frame repeat it until its duration ends, so the output lasts
the source's duration rounded up to a whole frame.

The stage is a generator over the decoder's items: it holds two source
frames at a time, so memory stays flat in the video's length. A window (one
chunk) writes the grid times in ``[start, end)``, reading one frame past
``end`` (the next chunk's first) to synthesise up to it, so the joined chunks
have every grid frame once; times before ``start`` are pre-roll (they prime a
stateful upscaler and are not written).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Iterator
from dataclasses import dataclass, replace
from fractions import Fraction
from typing import Protocol

import torch
from torch.nn import functional

from upres.domain.framerate import FrameRateRequest, frame_rate_request, output_rate
from upres.domain.media import VideoInfo
from upres.domain.tasks import Factor
from upres.inputs.probe import InputSource, open_input, video_stream
from upres.models.rife import PAD_MULTIPLE, RIFE, check_rife_installed, load_rife
from upres.models.specs import ModelSpec, SpeedClass
from upres.pipeline.decode import DecodeSummary, TimedBatch
from upres.pipeline.frames import FALLBACK_TIME_BASE, FrameBatch
from upres.pipeline.output_plan import OutputPlan
from upres.pipeline.scenecut import is_cut
from upres.pipeline.window import FrameWindow

SLOWMO_NOTE = (
    "Slow motion ({slowmo}x): the audio and subtitles were left out, since they no longer "
    "match the slowed video."
)


class FrameInterpolator(Protocol):
    """Synthesises frames between two frames."""

    def between(
        self, first: torch.Tensor, second: torch.Tensor, fractions: tuple[float, ...]
    ) -> torch.Tensor:
        """(H, W, 3) uint8/uint16 CPU frames -> (len(fractions), H, W, 3), same dtype, CPU:
        the frame at each fraction (0: ``first``, 1: ``second``) of the way."""
        ...


class RifeInterpolator:
    """``FrameInterpolator`` with RIFE on ``device`` in ``dtype`` (see ``rife_interpolator``),
    loaded by the first ``between``: a process that only joins chunks reads the frame-rate
    stage's request and never loads the network (35 MB of weights, about 90 MB more
    resident). Raises ModelError at once when the checkpoint is not installed."""

    def __init__(self, device: torch.device, dtype: torch.dtype = torch.float32) -> None:
        check_rife_installed()
        self._device, self._dtype = device, dtype
        self._network: RIFE | None = None
        self._fp32: RIFE | None = None

    @torch.inference_mode()
    def between(
        self, first: torch.Tensor, second: torch.Tensor, fractions: tuple[float, ...]
    ) -> torch.Tensor:
        """As ``FrameInterpolator.between``; a result with a non-finite value (fp16 out of
        range) is computed again in fp32. Raises ModelError when RIFE's weights are
        missing or do not fit."""
        scale = 65535.0 if first.dtype == torch.uint16 else 255.0
        height, width = first.shape[:2]
        # Contiguous: PyTorch's CPU grid_sample in fp16 returns NaN on a permuted tensor.
        pair = torch.stack((first, second)).to(self._device).permute(0, 3, 1, 2).contiguous()
        pair = _padded(pair.float() / scale)
        out = self._run(self._loaded(), pair.to(self._dtype), fractions)
        if not bool(torch.isfinite(out).all()):
            out = self._run(self._loaded_fp32(), pair, fractions)
        out = out[..., :height, :width].permute(0, 2, 3, 1).float() * scale
        return out.round().clamp(0, scale).to(first.dtype).cpu()

    def _loaded(self) -> RIFE:
        # Two threads meeting here first may both load it: the same weights, one is kept.
        if self._network is None:
            self._network = _load(self._device, self._dtype)
        return self._network

    def _loaded_fp32(self) -> RIFE:
        if self._fp32 is None:
            fp32 = self._dtype == torch.float32
            self._fp32 = self._loaded() if fp32 else _load(self._device, torch.float32)
        return self._fp32

    def _run(self, network: RIFE, pair: torch.Tensor, fractions: tuple[float, ...]) -> torch.Tensor:
        n = len(fractions)
        times = torch.tensor(fractions, device=pair.device, dtype=pair.dtype).view(n, 1, 1, 1)
        out: torch.Tensor = network(
            pair[:1].expand(n, -1, -1, -1), pair[1:].expand(n, -1, -1, -1), times
        )
        return out


def _load(device: torch.device, dtype: torch.dtype) -> RIFE:
    # Outside inference mode (``between`` runs in it): ordinary parameters, not
    # inference tensors, whatever the network is used for later.
    with torch.inference_mode(False):
        return load_rife(device, dtype)


# RIFE in fp16 on CUDA: against fp32 its frames agree to 55-58 dB PSNR (mean 0.2 code
# values), far closer than any synthesised frame is to the truth (docs/BENCHMARKS.md,
# "Frame interpolation"; checked with PyTorch's CPU fp16, not yet on a GPU).
_CUDA_DTYPE = torch.float16


@functools.cache
def rife_interpolator(device: torch.device) -> RifeInterpolator:
    """RIFE on ``device`` (fp16 on CUDA, fp32 elsewhere), one per process, loaded when it
    first interpolates. Raises ModelError when the checkpoint is not installed."""
    return RifeInterpolator(device, _CUDA_DTYPE if device.type == "cuda" else torch.float32)


def interpolates_first(spec: ModelSpec, factor: Factor) -> bool:
    """Whether RIFE runs on the source frames (then the model on every frame) for ``spec``
    at ``factor``, rather than on the model's output.

    After the model is better in every case measured (docs/QUALITY.md, "Where
    the stage runs": 0.4-0.8 dB closer to the dropped frame, 1.7-4.4 dB closer
    to what the model makes of it) and cheaper wherever the model costs more
    per frame than RIFE at the output size (docs/BENCHMARKS.md, "Frame
    interpolation"). The one exception is a fast model at 4x: RIFE on 16 times
    the pixels then costs more than the model on one more frame, and doubling
    the rate costs about 30% less before it, for about 0.5 dB (0.4-0.6 dB measured at 2x).
    """
    return spec.speed is SpeedClass.FAST and factor is Factor.X4


@dataclass(frozen=True, kw_only=True)
class FrameRateStage:
    """What a caller asks of the stage: the rate, the network, and where it runs.

    ``before_upscale``: on the source frames (every synthesised frame is then
    upscaled), else on the upscaled ones (see ``interpolates_first``).
    """

    request: FrameRateRequest
    interpolator: FrameInterpolator
    before_upscale: bool

    def retimer(
        self, timing: Retiming, window: FrameWindow, *, rate: int, batch_size: int
    ) -> Retimer:
        """A fresh run of the stage over ``window`` (``rate``: the deinterlacer's)."""
        return Retimer(
            timing=timing,
            interpolator=self.interpolator,
            start=None if window.start is None else window.start * rate,
            end=None if window.end is None else window.end * rate,
            batch_size=batch_size,
        )


def _padded(frames: torch.Tensor) -> torch.Tensor:
    """(N, 3, H, W) float32 with the edges repeated to multiples of ``PAD_MULTIPLE`` (motion
    at the border continues instead of meeting a black band)."""
    height, width = frames.shape[-2:]
    pad_h, pad_w = -height % PAD_MULTIPLE, -width % PAD_MULTIPLE
    if not (pad_h or pad_w):
        return frames
    return functional.pad(frames, (0, pad_w, 0, pad_h), mode="replicate")


@dataclass(frozen=True, kw_only=True)
class Retiming:
    """The output grid in exact seconds, and the ticks it is written in.

    ``source_time_base`` is the decoded frames' (the stream's, divided by the
    deinterlacer's rate); ``time_base`` the output's: fine enough for both
    the grid and the origin, so every output timestamp is exact.
    """

    origin: Fraction
    step: Fraction
    slowmo: int
    source_time_base: Fraction
    time_base: Fraction

    @property
    def rate(self) -> Fraction:
        return 1 / self.step

    def source_time(self, k: int) -> Fraction:
        """Where in the source output frame ``k`` is (seconds)."""
        return self.origin + k * self.step / self.slowmo

    def pts(self, k: int) -> int:
        """Output frame ``k``'s timestamp in ``time_base``."""
        return int((self.origin + k * self.step) / self.time_base)

    def first_at_or_after(self, seconds: Fraction) -> int:
        """The first grid index whose source time is at or after ``seconds``."""
        return max(0, math.ceil((seconds - self.origin) * self.slowmo / self.step))

    def frames_for(self, source_frames: int, source_fps: Fraction) -> int:
        """About how many output frames ``source_frames`` at ``source_fps`` become."""
        return max(1, round(source_frames * self.rate * self.slowmo / source_fps))


def retiming_for(
    source: InputSource, request: FrameRateRequest, *, source_fps: Fraction | None, rate: int = 1
) -> Retiming:
    """The grid ``request`` puts on ``source`` (``rate``: the deinterlacer's frames per frame).

    Raises InvalidRequest when no rate is requested and the source declares
    none, and what ``open_input`` raises.
    """
    step = 1 / output_rate(request, source_fps * rate if source_fps else None)
    with open_input(source) as container:
        stream = video_stream(container)
        base = Fraction(stream.time_base or FALLBACK_TIME_BASE) / rate
        start = stream.start_time or 0
    origin = start * rate * base
    return Retiming(
        origin=origin,
        step=step,
        slowmo=request.slowmo,
        source_time_base=base,
        time_base=_common_base(base, step),
    )


def retimed_plan(
    source: InputSource, info: VideoInfo, plan: OutputPlan, request: FrameRateRequest, *, rate: int
) -> tuple[OutputPlan, Retiming | None]:
    """``plan`` writing the grid ``request`` puts on ``source`` (its rate and time base; slow
    motion noted), and that grid; ``plan`` and None when ``request`` keeps the timing.

    Raises InvalidRequest when ``request`` does not suit the source
    (``frame_rate_request``: ``rate`` is the deinterlacer's frames per frame).
    """
    if not request.retimes:
        return plan, None
    source_fps = info.average_fps * rate if info.average_fps else None
    frame_rate_request(fps=request.fps, slowmo=request.slowmo, source_fps=source_fps)
    timing = retiming_for(source, request, source_fps=info.average_fps, rate=rate)
    notes = plan.notes
    if timing.slowmo > 1:
        notes = (*notes, SLOWMO_NOTE.format(slowmo=timing.slowmo))
    retimed = replace(
        plan, frame_rate=timing.rate, time_base=timing.time_base, stretch=timing.slowmo, notes=notes
    )
    return retimed, timing


def _common_base(a: Fraction, b: Fraction) -> Fraction:
    """The largest time base in which both ``a`` and ``b`` are whole numbers of ticks."""
    return Fraction(math.gcd(a.numerator * b.denominator, b.numerator * a.denominator)) / (
        a.denominator * b.denominator
    )


@dataclass(frozen=True, kw_only=True)
class _Source:
    pixels: torch.Tensor
    time: Fraction
    end: Fraction


class Retimer:
    """One run of the stage over a window ``[start, end)`` of source ticks (None: open)."""

    def __init__(
        self,
        *,
        timing: Retiming,
        interpolator: FrameInterpolator,
        start: int | None,
        end: int | None,
        batch_size: int,
    ) -> None:
        base = timing.source_time_base
        self._timing, self._interpolator = timing, interpolator
        self._start = None if start is None else start * base
        self._end = None if end is None else end * base
        self._batch_size = max(1, batch_size)
        self._next: int | None = None
        self._written = 0
        self._pending: list[tuple[torch.Tensor, int, bool]] = []

    def run(self, items: Iterator[object]) -> Iterator[object]:
        """``items`` with the batches retimed; the summary counts the frames written."""
        previous: _Source | None = None
        for item in items:
            if isinstance(item, DecodeSummary):
                if previous is not None:
                    yield from self._after_last(previous)
                yield from self._flush()
                yield replace(item, frames=self._written)
                continue
            if not isinstance(item, TimedBatch):
                yield item
                continue
            for current in self._sources(item):
                if previous is None:
                    yield from self._before_first(current)
                else:
                    yield from self._between(previous, current)
                previous = current

    def _sources(self, timed: TimedBatch) -> Iterator[_Source]:
        base = self._timing.source_time_base
        frames = timed.frames
        for i, (pts, duration) in enumerate(zip(frames.pts, timed.durations, strict=True)):
            yield _Source(pixels=frames.pixels[i], time=pts * base, end=(pts + duration) * base)

    def _before_first(self, first: _Source) -> Iterator[TimedBatch]:
        """Grid times before the first frame: repeated when the window is the video's start."""
        if self._start is None:
            self._next = 0
            while self._timing.source_time(self._next) < first.time:
                yield from self._add(first.pixels)
        else:
            self._next = self._timing.first_at_or_after(first.time)

    def _between(self, previous: _Source, current: _Source) -> Iterator[TimedBatch]:
        times = self._times_until(current.time)
        if not times:
            return
        gap = current.time - previous.time
        fractions = [float((t - previous.time) / gap) for t in times]
        if fractions[0] == 0.0:
            yield from self._add(previous.pixels)
            fractions = fractions[1:]
        if not fractions:
            return
        if is_cut(previous.pixels, current.pixels):
            for fraction in fractions:
                yield from self._add(previous.pixels if fraction < 0.5 else current.pixels)
            return
        size = self._batch_size
        for i in range(0, len(fractions), size):
            group = tuple(fractions[i : i + size])
            made = self._interpolator.between(previous.pixels, current.pixels, group)
            for frame in made:
                yield from self._add(frame)

    def _after_last(self, last: _Source) -> Iterator[TimedBatch]:
        for _ in self._times_until(last.end):
            yield from self._add(last.pixels)

    def _times_until(self, limit: Fraction) -> list[Fraction]:
        """The source times of the grid frames still to write before ``limit`` (and ``end``)."""
        if self._end is not None:
            limit = min(limit, self._end)
        times: list[Fraction] = []
        k = self._next or 0
        while (t := self._timing.source_time(k + len(times))) < limit:
            times.append(t)
        return times

    def _add(self, pixels: torch.Tensor) -> Iterator[TimedBatch]:
        k = self._next or 0
        self._next = k + 1
        preroll = self._start is not None and self._timing.source_time(k) < self._start
        if self._pending and self._pending[-1][2] != preroll:
            yield from self._flush()
        self._pending.append((pixels, self._timing.pts(k), preroll))
        if len(self._pending) >= self._batch_size:
            yield from self._flush()

    def _flush(self) -> Iterator[TimedBatch]:
        if not self._pending:
            return
        pixels = torch.stack([p for p, _, _ in self._pending])
        pts = tuple(t for _, t, _ in self._pending)
        preroll = self._pending[0][2]
        step = int(self._timing.step / self._timing.time_base)
        batch = FrameBatch(pixels=pixels, pts=pts, first_index=self._written)
        if not preroll:
            self._written += len(pts)
        self._pending = []
        yield TimedBatch(frames=batch, durations=(step,) * len(pts), preroll=preroll)
