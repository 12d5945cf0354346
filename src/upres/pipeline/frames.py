"""What flows between pipeline stages, and the interface of the upscaling stage."""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from typing import Protocol

import torch

# The time base of a stream that declares none (90 kHz, MPEG's clock).
FALLBACK_TIME_BASE = Fraction(1, 90_000)


@dataclass(frozen=True, kw_only=True)
class FrameBatch:
    """Consecutive decoded frames of one video.

    ``pixels`` is RGB, shape (N, H, W, 3), on the CPU: uint8 for 8-bit sources,
    uint16 (full 16-bit range) for high bit depth sources. ``pts`` holds each
    frame's presentation timestamp in the stream's time base, so the encoder
    keeps timing (variable frame rate included) exactly.
    """

    pixels: torch.Tensor
    pts: tuple[int, ...]
    first_index: int

    @property
    def count(self) -> int:
        return len(self.pts)


class FrameUpscaler(Protocol):
    """Turns frames into frames ``factor`` times larger (``factor`` 1 keeps the size).

    ``factor`` is the factor asked for, not a network's native scale
    (``ModelSpec.scale``), which may be larger: the output is then downscaled.
    """

    @property
    def factor(self) -> int: ...

    @property
    def batch_size(self) -> int:
        """How many frames the stage wants per call (1 on CPU, more on GPU)."""
        ...

    def upscale(self, pixels: torch.Tensor) -> torch.Tensor:
        """(N, H, W, 3) uint8/uint16 CPU -> (N, H*factor, W*factor, 3), same dtype, CPU.

        Raises ModelError when the model cannot run on this input.
        """
        ...
