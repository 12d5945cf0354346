"""Temporal stability: carry the previous output forward along the input's motion.

A per-frame network invents texture anew in every frame, so on camera footage
(fresh noise in each frame) its output shimmers. This stage, applied after the
model, makes each output frame

    out_t = w * warp(out_{t-1}) + (1 - w) * model_t

where ``warp`` follows the motion estimated on the *input* frames (never on
the flickering output), scaled to the output size, and ``w`` is per pixel:
``carry`` where the input itself agrees with its warped predecessor, falling
to 0 where it does not (occlusions, found by a forward-backward flow check;
large input changes; the frame's border where the motion brings in new
content). A scene cut, where most of the frame fails those checks, resets the
state. With ``carry`` near 1 texture moves with the scene instead of being
re-invented, and new texture enters only where the scene is new or the warp
fails (the direction of Bonneel et al. 2015 and Lai et al. 2018, with the
occlusion-masked warping error of the latter as the bench's metric).

``TemporalStabiliser`` holds one video's state; ``StabilisedUpscaler`` wraps
any ``FrameUpscaler`` with a fresh one, so the pipeline stays unchanged and
streaming (state is one input and one output frame; batches are processed in
order by the upscale thread). To start mid-video (a chunked mode), feed a few
frames before the chunk (the carried texture renews itself within about ten
frames at the default ``carry``) and drop their outputs.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch.nn import functional

from upres.models.spynet import flow_warp
from upres.pipeline.frames import FrameUpscaler
from upres.pipeline.motion import FlowEstimator, FlowMethod, flow_estimator
from upres.pipeline.upscale import check_frames, to_packed_int, to_planar_float

_LUMA = (0.299, 0.587, 0.114)


@dataclass(frozen=True, kw_only=True)
class TemporalSettings:
    """How strongly the previous output is carried forward (see the module docstring).

    ``carry``: weight of the warped previous output where motion is reliable.
    ``tolerance``: local mean absolute luma error (0-1) of the warped input at
    which the weight reaches 0. ``fb_slack_px``/``fb_ratio``: the
    forward-backward check, |f + b| ^ 2 <= ratio * (|f| ^ 2 + |b| ^ 2) + slack ^ 2.
    ``cut_share``: a frame with less than this share of reliable pixels is a
    scene cut and resets the state. ``margin_px``: unreliable pixels grow by
    this many input pixels, so no edge of an occluder ghosts. ``sharpen``: how much
    of the blur of resampling between pixels is given back to the carried texture
    (0: none; more keeps more detail over long shots but warps less exactly, see
    docs/QUALITY.md).
    """

    carry: float = 0.9
    tolerance: float = 0.08
    fb_slack_px: float = 0.75
    fb_ratio: float = 0.05
    cut_share: float = 0.3
    margin_px: int = 1
    sharpen: float = 0.0


@dataclass(frozen=True, kw_only=True)
class _Frame:
    """One frame of state: the input and its output, (1, 3, h, w) floats in [0, 1]."""

    source: torch.Tensor
    output: torch.Tensor


class TemporalStabiliser:
    """The state of one video: frames must come in display order.

    ``device`` is where the blend computes (the model's device).
    """

    def __init__(
        self,
        flow: FlowEstimator,
        *,
        settings: TemporalSettings | None = None,
        device: torch.device | None = None,
    ) -> None:
        self._flow = flow
        self._settings = settings or TemporalSettings()
        self._device = device or torch.device("cpu")
        self._previous: _Frame | None = None
        self.cuts = 0

    def reset(self) -> None:
        """Forget the previous frame: the next frame is taken as the model made it."""
        self._previous = None

    @property
    def device(self) -> torch.device:
        return self._device

    def stabilise(self, source: torch.Tensor, output: torch.Tensor) -> torch.Tensor:
        """One frame: ``source`` (1, 3, h, w) and the model's ``output`` (1, 3, H, W), floats
        in [0, 1] on the stage's device -> the stabilised output (1, 3, H, W)."""
        previous, self._previous = self._previous, None
        result = output if previous is None else self._blend(previous, source, output)
        self._previous = _Frame(source=source, output=result)
        return result

    def _blend(self, previous: _Frame, source: torch.Tensor, output: torch.Tensor) -> torch.Tensor:
        backward = self._flow.flow(source, previous.source)
        forward = self._flow.flow(previous.source, source)
        weight = reliability(source, previous.source, backward, forward, self._settings)
        if float(weight.mean()) < self._settings.cut_share:
            self.cuts += 1
            return output
        weight = self._settings.carry * weight
        scale = output.shape[-1] / source.shape[-1]
        big_flow = _resize(backward, output.shape[-2:]) * scale
        carried = flow_warp(previous.output, big_flow, mode="bicubic")
        if self._settings.sharpen > 0:
            # Resampling between pixels blurs (most at half a pixel, not at all at whole
            # pixels); give back what it took, so carried texture keeps its detail.
            fraction = big_flow - big_flow.round()
            loss = (4.0 * fraction.abs() * (1.0 - fraction.abs())).mean(dim=1, keepdim=True)
            blurred = functional.avg_pool2d(carried, 3, 1, 1, count_include_pad=False)
            carried = carried + self._settings.sharpen * loss * (carried - blurred)
        carried = carried.clamp_(0.0, 1.0)
        big_weight = _resize(weight, output.shape[-2:])
        return torch.lerp(output, carried, big_weight)


def reliability(
    source: torch.Tensor,
    previous: torch.Tensor,
    backward: torch.Tensor,
    forward: torch.Tensor,
    settings: TemporalSettings,
) -> torch.Tensor:
    """(1, 1, h, w) in [0, 1]: how far ``previous`` warped by ``backward`` can stand for
    ``source`` (1 where it matches, 0 at occlusions, large changes and lost borders)."""
    error = (_luma(source) - _luma(flow_warp(previous, backward))).abs()
    # The mean over 3x3 tames the input's noise; the max over 3x3 then lets a failure
    # at an occluder's edge spread to its neighbours instead of being averaged away.
    error = functional.avg_pool2d(error, 3, 1, 1, count_include_pad=False)
    error = functional.max_pool2d(error, 3, 1, 1)
    photometric = (1.0 - error / settings.tolerance).clamp_(0.0, 1.0)
    valid = _consistent(backward, forward, settings)
    margin = settings.margin_px
    if margin > 0:
        valid = -functional.max_pool2d(-valid.float(), 2 * margin + 1, 1, margin) > 0.5
    return photometric * (valid & _inside(backward)).float()


def _consistent(
    backward: torch.Tensor, forward: torch.Tensor, settings: TemporalSettings
) -> torch.Tensor:
    """Pixels whose backward flow is undone by the forward flow where it lands."""
    returned = flow_warp(forward, backward)
    mismatch = (backward + returned).square().sum(dim=1, keepdim=True)
    magnitude = backward.square().sum(dim=1, keepdim=True) + returned.square().sum(
        dim=1, keepdim=True
    )
    return mismatch <= settings.fb_ratio * magnitude + settings.fb_slack_px**2


def _inside(flow: torch.Tensor) -> torch.Tensor:
    """Pixels whose flow lands inside the frame (or less than half a pixel outside it,
    where the border's value is what the frame would show)."""
    _, _, height, width = flow.shape
    ys, xs = torch.meshgrid(
        torch.arange(height, device=flow.device, dtype=flow.dtype),
        torch.arange(width, device=flow.device, dtype=flow.dtype),
        indexing="ij",
    )
    x = xs + flow[:, 0:1]
    y = ys + flow[:, 1:2]
    return (x >= -0.5) & (x <= width - 0.5) & (y >= -0.5) & (y <= height - 0.5)


def _luma(rgb: torch.Tensor) -> torch.Tensor:
    weights = torch.tensor(_LUMA, device=rgb.device, dtype=rgb.dtype).view(1, 3, 1, 1)
    return (rgb * weights).sum(dim=1, keepdim=True)


def _resize(x: torch.Tensor, size: torch.Size | tuple[int, ...]) -> torch.Tensor:
    if tuple(x.shape[-2:]) == tuple(size):
        return x
    return functional.interpolate(x, size=tuple(size), mode="bilinear", align_corners=False)


class StabilisedUpscaler:
    """A ``FrameUpscaler``: ``inner``'s frames passed through a ``TemporalStabiliser``.

    One instance per video (it carries that video's state between batches).
    """

    def __init__(self, inner: FrameUpscaler, stabiliser: TemporalStabiliser) -> None:
        self._inner = inner
        self._stabiliser = stabiliser

    @property
    def factor(self) -> int:
        return self._inner.factor

    @property
    def batch_size(self) -> int:
        return self._inner.batch_size

    @property
    def stabiliser(self) -> TemporalStabiliser:
        return self._stabiliser

    def upscale(self, pixels: torch.Tensor) -> torch.Tensor:
        """As ``inner.upscale``, then each frame stabilised in order.

        Raises ModelError as ``inner.upscale`` and when the frames are malformed.
        """
        check_frames(pixels)
        upscaled = self._inner.upscale(pixels)
        device = self._stabiliser.device
        sources = to_planar_float(pixels, device, torch.float32)
        outputs = to_planar_float(upscaled, device, torch.float32)
        frames = [
            self._stabiliser.stabilise(sources[i : i + 1], outputs[i : i + 1])
            for i in range(len(pixels))
        ]
        return to_packed_int(torch.cat(frames), pixels.dtype)


class TemporalStage:
    """Wraps upscalers for one video each, sharing one flow estimator (loaded on first use)."""

    def __init__(
        self,
        method: FlowMethod,
        device: torch.device,
        *,
        settings: TemporalSettings | None = None,
    ) -> None:
        self._method = method
        self._device = device
        self._settings = settings
        self._flow: FlowEstimator | None = None

    def wrap(self, inner: FrameUpscaler) -> StabilisedUpscaler:
        """``inner`` with a fresh stabiliser: use it for one video.

        Raises ModelError when the flow estimator's weights are not installed.
        """
        if self._flow is None:
            self._flow = flow_estimator(self._method, self._device)
        stabiliser = TemporalStabiliser(self._flow, settings=self._settings, device=self._device)
        return StabilisedUpscaler(inner, stabiliser)
