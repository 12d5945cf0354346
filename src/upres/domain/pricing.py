"""Credits for a video: per started second of input, times the factor's price,
times the network's multiplier; plus, when the task retimes it (a frame rate or
slow motion), per started second of output for the interpolation."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field

from upres.domain.framerate import UNCHANGED, FrameRateRequest, output_duration
from upres.domain.tasks import Factor


@dataclass(frozen=True, kw_only=True)
class Pricing:
    """Credits per second of input video for each factor, and a multiplier per network.

    The defaults follow the peer convention the spec's example cites: 1x and 2x
    cost the same, 4x costs 1.75 times that. A network not in
    ``network_multipliers`` (and a task that names none, from before networks
    were chosen) costs 1.0 times the factor's price. Interpolation costs
    ``interpolation_per_second`` per started second of output (slow motion makes
    more of them), whatever the network: RIFE is the same work for every model.
    """

    per_second_1x: float = 16.0
    per_second_2x: float = 16.0
    per_second_4x: float = 28.0
    network_multipliers: Mapping[str, float] = field(default_factory=dict)
    interpolation_per_second: float = 4.0

    def rate(self, factor: Factor, network: str | None) -> float:
        """Credits per second of input at ``factor`` on ``network``: the one price rule."""
        per_second = {
            Factor.ENHANCE: self.per_second_1x,
            Factor.X2: self.per_second_2x,
            Factor.X4: self.per_second_4x,
        }[factor]
        return per_second * self.multiplier(network)

    def multiplier(self, network: str | None) -> float:
        """How many times the factor's price ``network`` costs (1.0 when not priced)."""
        return self.network_multipliers.get(network, 1.0) if network else 1.0

    def credits(
        self,
        *,
        duration_s: float,
        factor: Factor,
        network: str | None,
        frame_rate: FrameRateRequest = UNCHANGED,
    ) -> float:
        """Credits for ``duration_s`` seconds of input, rounded up to whole seconds (at
        least one), plus the interpolation of its output when ``frame_rate`` retimes it:
        the one price rule for the estimate, the reservation and the charge."""
        upscale = _started_seconds(duration_s) * self.rate(factor, network)
        return round(upscale + self.interpolation(duration_s, frame_rate), 6)

    def interpolation(self, duration_s: float, frame_rate: FrameRateRequest) -> float:
        """Credits for interpolating ``duration_s`` seconds of input at ``frame_rate``:
        per started second of output (``slowmo`` times the input's); 0 when it keeps
        the source's timing."""
        if not frame_rate.retimes:
            return 0.0
        output_s = output_duration(duration_s, frame_rate)
        return _started_seconds(output_s) * self.interpolation_per_second


def _started_seconds(duration_s: float) -> int:
    """Whole seconds, a started one counting (at least one; float noise ignored)."""
    return max(1, math.ceil(round(duration_s, 6)))
