"""Recurrent video models (AnimeSR v2) as a ``FrameUpscaler``, one instance per video.

The network carries its previous output and hidden state from frame to frame
and from batch to batch, and looks one frame ahead inside a batch; the last
frame of a batch (and of the video) stands in for its own next frame, as the
reference implementation does at the end of a clip. On the CPU batches are
``CPU_BATCH`` frames so that most frames see their successor.
"""

from __future__ import annotations

import threading

import torch
from torch.nn import functional

from upres.domain.tasks import Factor
from upres.errors import ModelError
from upres.models.animesr import MULTIPLE_OF, SCALE, AnimeSR, load_animesr
from upres.models.basicvsr import BasicVSR, load_basicvsr
from upres.models.devices import torch_device
from upres.models.registry import check_factor
from upres.models.specs import Architecture, ModelSpec
from upres.pipeline.bidirectional import BidirectionalUpscaler
from upres.pipeline.upscale import (
    InterpolationMode,
    ModelUpscaler,
    NetworkSource,
    check_frames,
    resize,
    to_packed_int,
    to_planar_float,
)

CPU_BATCH = 8
GPU_BATCH = 16


class RecurrentNetworks:
    """Loaded video networks per (model, device, dtype), so a worker loads each once."""

    def __init__(self) -> None:
        self._loaded: dict[tuple[str, torch.dtype], AnimeSR] = {}
        self._basicvsr: dict[tuple[str, str, torch.dtype], BasicVSR] = {}
        self._lock = threading.Lock()

    def network(self, device: torch.device, dtype: torch.dtype) -> AnimeSR:
        """Raises ModelError when the weights are not installed."""
        key = (str(device), dtype)
        with self._lock:
            if key not in self._loaded:
                self._loaded[key] = load_animesr(device, dtype)
            return self._loaded[key]

    def basicvsr(self, spec: ModelSpec, device: torch.device, dtype: torch.dtype) -> BasicVSR:
        """The BasicVSR checkpoint ``spec`` names. Raises ModelError when it is not installed."""
        key = (spec.id, str(device), dtype)
        with self._lock:
            if key not in self._basicvsr:
                self._basicvsr[key] = load_basicvsr(spec.package, spec.stem, device, dtype)
            return self._basicvsr[key]


class RecurrentUpscaler:
    """AnimeSR at ``factor`` (4x native; 2x and 1x area-downscaled), carrying its state."""

    def __init__(
        self,
        spec: ModelSpec,
        factor: Factor,
        *,
        device: str = "auto",
        networks: RecurrentNetworks | None = None,
        downscale: InterpolationMode = "area",
    ) -> None:
        """Raises ModelError when the device is unavailable or ``factor`` > 4."""
        check_factor(spec, factor)
        self._spec = spec
        self._factor = factor
        self._device = torch_device(device)
        self._networks = networks or RecurrentNetworks()
        self._downscale: InterpolationMode = downscale
        self._previous: torch.Tensor | None = None
        self._state: torch.Tensor | None = None
        self._last_frame: torch.Tensor | None = None  # the previous input frame

    @property
    def factor(self) -> int:
        return int(self._factor)

    @property
    def batch_size(self) -> int:
        return GPU_BATCH if self._device.type == "cuda" else CPU_BATCH

    @property
    def device(self) -> torch.device:
        return self._device

    def upscale(self, pixels: torch.Tensor) -> torch.Tensor:
        """(N, H, W, 3) -> (N, H*factor, W*factor, 3), same dtype, CPU, in video order.

        Raises ModelError when the frames are malformed or the network fails on them.
        """
        check_frames(pixels)
        frames = to_planar_float(pixels, self._device, torch.float32)
        height, width = frames.shape[-2:]
        padded = _pad(frames)
        network = self._networks.network(self._device, torch.float32)
        outputs = []
        try:
            with torch.inference_mode():
                for i in range(len(padded)):
                    nxt = padded[min(i + 1, len(padded) - 1)]
                    big = self._step(network, padded[i], nxt)
                    big = big[..., : height * SCALE, : width * SCALE].clamp(0.0, 1.0)
                    size = (height * self.factor, width * self.factor)
                    outputs.append(resize(big, height=size[0], width=size[1], mode=self._downscale))
        except RuntimeError as exc:
            raise ModelError(f"model {self._spec.id} failed: {exc}") from exc
        return to_packed_int(torch.cat(outputs), pixels.dtype)

    def _step(self, network: AnimeSR, frame: torch.Tensor, nxt: torch.Tensor) -> torch.Tensor:
        current, following = frame[None], nxt[None]
        n, _, h, w = current.shape
        if self._previous is None or self._state is None or self._last_frame is None:
            self._previous = current.new_zeros(n, 3, h * SCALE, w * SCALE)
            self._state = current.new_zeros(n, network.features, h, w)
            self._last_frame = current
        window = torch.cat((self._last_frame, current, following), dim=1)
        out, state = network(window, self._previous, self._state)
        self._previous, self._state, self._last_frame = out, state, current
        return self._previous


def _pad(frames: torch.Tensor) -> torch.Tensor:
    """Replicate-pad the bottom and right edges to a multiple of ``MULTIPLE_OF``."""
    height, width = frames.shape[-2:]
    bottom = -height % MULTIPLE_OF
    right = -width % MULTIPLE_OF
    if not bottom and not right:
        return frames
    return functional.pad(frames, (0, right, 0, bottom), mode="replicate")


def model_upscaler(
    spec: ModelSpec,
    factor: Factor,
    *,
    device: str = "auto",
    models: NetworkSource | None = None,
    networks: RecurrentNetworks | None = None,
) -> ModelUpscaler | RecurrentUpscaler | BidirectionalUpscaler:
    """The upscaler for ``spec``: a fresh ``BidirectionalUpscaler`` or
    ``RecurrentUpscaler`` (one per video) for a video model, else a ``ModelUpscaler``.

    Raises ModelError when the device is unavailable or ``factor`` > the model's scale.
    """
    if spec.architecture is Architecture.BASICVSR:
        networks = networks or RecurrentNetworks()
        return BidirectionalUpscaler(spec, factor, device=device, networks=networks)
    if spec.recurrent:
        return RecurrentUpscaler(spec, factor, device=device, networks=networks)
    return ModelUpscaler(spec, factor, device=device, models=models)
