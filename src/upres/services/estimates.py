"""What a probed video will take to upscale: seconds from measured throughput."""

from __future__ import annotations

import math
from fractions import Fraction
from typing import Protocol

from upres.domain.framerate import UNCHANGED, FrameRateRequest, output_duration, output_rate
from upres.domain.media import frame_total
from upres.domain.tasks import Factor


class ProbedVideo(Protocol):
    """What pricing and the time estimate need of a probed video (a ``VideoInfo``
    of a URL, or a stored ``Upload``)."""

    @property
    def width(self) -> int: ...
    @property
    def height(self) -> int: ...
    @property
    def duration_s(self) -> float: ...
    @property
    def frame_count(self) -> int | None: ...
    @property
    def average_fps(self) -> Fraction | None: ...


class ThroughputSource(Protocol):
    def throughput(self, factor: Factor, network: str) -> float | None:
        """Measured output megapixels per second of ``network`` at ``factor``; until
        it has one, the factor's measurement from before networks were told apart;
        None when neither exists."""
        ...


class ThroughputEstimator:
    """Seconds to upscale a video: output megapixels over the throughput measured
    for its factor and network (networks differ by several times in speed).

    Until the workers have measured a factor (on the network or before networks
    were told apart), a deliberately slow default (CPU-class speed) keeps the
    first estimates on the safe side.
    """

    def __init__(
        self,
        source: ThroughputSource,
        *,
        default_mpix_per_s: float = 2.0,
        overhead_s: float = 5.0,
        fallback_fps: float = 30.0,
    ) -> None:
        self._source = source
        self._default = default_mpix_per_s
        self._overhead = overhead_s
        self._fallback_fps = fallback_fps

    def estimate(
        self,
        info: ProbedVideo,
        factor: Factor,
        network: str,
        frame_rate: FrameRateRequest = UNCHANGED,
    ) -> int:
        """Seconds for the output's frames on ``network`` (the id the task runs,
        ``upres.models.registry.task_network``; ``frame_rate`` may make more
        frames than the source's)."""
        rate = self._source.throughput(factor, network) or self._default
        frames = self._frames(info, frame_rate)
        output_mpix = info.width * info.height * int(factor) ** 2 * frames / 1e6
        return math.ceil(self._overhead + output_mpix / rate)

    def _frames(self, info: ProbedVideo, frame_rate: FrameRateRequest) -> int:
        fps = info.average_fps or Fraction(self._fallback_fps)
        if frame_rate.retimes:
            seconds = output_duration(info.duration_s, frame_rate)
            return max(1, math.ceil(seconds * output_rate(frame_rate, fps)))
        return frame_total(info.frame_count, info.duration_s, fps) or 1
