"""Credits for a video: per started second of input, times the factor's price,
times the network's multiplier."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field

from upres.domain.tasks import Factor


@dataclass(frozen=True, kw_only=True)
class Pricing:
    """Credits per second of input video for each factor, and a multiplier per network.

    The defaults follow the peer convention the spec's example cites: 1x and 2x
    cost the same, 4x costs 1.75 times that. A network not in
    ``network_multipliers`` (and a task that names none, from before networks
    were chosen) costs 1.0 times the factor's price.
    """

    per_second_1x: float = 16.0
    per_second_2x: float = 16.0
    per_second_4x: float = 28.0
    network_multipliers: Mapping[str, float] = field(default_factory=dict)

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

    def credits(self, *, duration_s: float, factor: Factor, network: str | None) -> float:
        """Credits for ``duration_s`` seconds, rounded up to whole seconds (at least one)."""
        seconds = max(1, math.ceil(round(duration_s, 6)))
        return round(seconds * self.rate(factor, network), 6)
