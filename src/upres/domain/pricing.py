"""Credits for a video: per started second of input, times the factor's price."""

from __future__ import annotations

import math
from dataclasses import dataclass

from upres.domain.tasks import Factor


@dataclass(frozen=True, kw_only=True)
class Pricing:
    """Credits per second of input video for each factor.

    The defaults follow the peer convention the spec's example cites: 1x and 2x
    cost the same, 4x costs 1.75 times that.
    """

    per_second_1x: float = 16.0
    per_second_2x: float = 16.0
    per_second_4x: float = 28.0

    def rate(self, factor: Factor) -> float:
        return {
            Factor.ENHANCE: self.per_second_1x,
            Factor.X2: self.per_second_2x,
            Factor.X4: self.per_second_4x,
        }[factor]

    def credits(self, *, duration_s: float, factor: Factor) -> float:
        """Credits for ``duration_s`` seconds, rounded up to whole seconds (at least one)."""
        seconds = max(1, math.ceil(round(duration_s, 6)))
        return round(seconds * self.rate(factor), 6)
