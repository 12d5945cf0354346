"""Which runtime runs a model on a device (``upres.models.devices`` resolves the device).

On CUDA every model runs on PyTorch; on Vulkan the models the ncnn files
describe run on ncnn and the others on PyTorch on the CPU; on the CPU each
model runs on the runtime measured faster for it (``registry.cpu_runtime``).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import torch

from upres.domain.media import EncodeSettings
from upres.domain.tasks import Factor
from upres.models.devices import Device
from upres.models.registry import cpu_runtime, runtimes
from upres.models.specs import ModelSpec, Runtime, SpeedClass
from upres.pipeline.frames import FrameUpscaler
from upres.pipeline.ncnn_upscale import NcnnSource, NcnnUpscaler
from upres.pipeline.output_plan import keeping_up
from upres.pipeline.recurrent import RecurrentNetworks, model_upscaler
from upres.pipeline.upscale import NetworkSource


@dataclass(frozen=True, kw_only=True)
class Placement:
    """Where one model runs: ``runtime`` on ``device``."""

    runtime: Runtime
    device: Device

    @property
    def on_gpu(self) -> bool:
        return self.device.is_gpu

    @property
    def torch_device(self) -> torch.device:
        """Where PyTorch stages beside the model (the optical flow) run: on CUDA with
        the model, else on the CPU (a Vulkan model's flow too)."""
        return torch.device("cuda" if self.device.kind == "cuda" else "cpu")


def place(spec: ModelSpec, device: Device) -> Placement:
    """The runtime for ``spec`` on ``device``: PyTorch on CUDA, ncnn on Vulkan when
    the model has an ncnn form (else PyTorch on the CPU), the faster one on the CPU."""
    if device.kind == "cuda":
        return Placement(runtime=Runtime.PYTORCH, device=device)
    if device.kind == "vulkan":
        if Runtime.NCNN in runtimes(spec):
            return Placement(runtime=Runtime.NCNN, device=device)
        return Placement(runtime=Runtime.PYTORCH, device=Device(kind="cpu"))
    return Placement(runtime=cpu_runtime(spec), device=device)


def encoding_for(
    encode: EncodeSettings, specs: Iterable[ModelSpec], device: Device
) -> EncodeSettings:
    """``encode``, kept up (``keeping_up``) with the models ``specs`` on ``device``.

    The source is fast when every model that may feed this encoding is a fast
    model placed on a GPU: the CLI passes its one model; a worker, which
    encodes every task with one setting, the model of each factor.
    """
    fast = all(place(spec, device).on_gpu and spec.speed is SpeedClass.FAST for spec in specs)
    return keeping_up(encode, fast_source=fast)


def build_upscaler(
    spec: ModelSpec,
    factor: Factor,
    placement: Placement,
    *,
    models: NetworkSource | None = None,
    networks: NcnnSource | None = None,
    recurrent: RecurrentNetworks | None = None,
) -> FrameUpscaler:
    """The model stage for ``spec`` at ``factor`` as ``placement`` says (a recurrent
    model's is a fresh one, for one video).

    Raises ModelError when the device is unavailable or ``factor`` > the model's scale.
    """
    if placement.runtime is Runtime.NCNN:
        return NcnnUpscaler(spec, factor, vulkan=placement.device.vulkan, networks=networks)
    device = placement.torch_device.type
    return model_upscaler(spec, factor, device=device, models=models, networks=recurrent)
