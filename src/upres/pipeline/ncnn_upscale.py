"""The model stage on the ncnn runtime: a ``FrameUpscaler`` on the CPU or a Vulkan device.

It is a ``TiledUpscaler`` like ``ModelUpscaler``, so every step but the
network call is the same code (integer frames to [0, 1] floats, padding,
tiles with overlap, clamping, area downscale to the factor, back to the
input's integer type): the pipeline cannot tell which runtime ran the
network. Only the network call differs: ncnn, one frame at a time.
"""

from __future__ import annotations

from typing import Protocol

import torch

from upres.domain.tasks import Factor
from upres.models.ncnn_runtime import NcnnCache, NcnnOptions, NcnnRunError, vulkan_device
from upres.models.specs import ModelSpec
from upres.models.tiling import Network
from upres.pipeline.upscale import (
    InterpolationMode,
    TiledUpscaler,
    auto_tile_size,
    run_with_fallback,
)

_CPU = torch.device("cpu")
_MB = 1 << 20


class NcnnSource(Protocol):
    """Where ``NcnnUpscaler`` gets networks from (``NcnnCache`` in production)."""

    def network(self, spec: ModelSpec, options: NcnnOptions) -> Network: ...


class NcnnUpscaler(TiledUpscaler):
    """A ``FrameUpscaler`` that runs a registered model with ncnn at ``factor``.

    ``vulkan`` is the Vulkan device index (None: the CPU, with ``threads``
    threads, default torch's count so ``UPRES_TORCH_THREADS`` applies to both
    runtimes). ncnn stores activations in fp16 where the device supports it;
    a frame whose output has a non-finite value is recomputed in fp32. On a
    GPU, a tile that ncnn cannot run (out of memory) is halved and tried again.
    """

    def __init__(
        self,
        spec: ModelSpec,
        factor: Factor,
        *,
        vulkan: int | None = None,
        threads: int | None = None,
        networks: NcnnSource | None = None,
        tile_size: int | None = None,
        fp32: bool = False,
        downscale: InterpolationMode = "area",
    ) -> None:
        """Raises ModelError when the Vulkan device does not exist or ``factor`` > the scale."""
        super().__init__(spec, factor, tile_size=tile_size, downscale=downscale)
        self._budget_mb = None if vulkan is None else vulkan_device(vulkan).heap_budget_mb
        self._options = NcnnOptions(
            vulkan=vulkan, threads=threads or torch.get_num_threads(), fp32=fp32
        )
        self._networks: NcnnSource = networks if networks is not None else NcnnCache()

    @property
    def batch_size(self) -> int:
        return 1

    @property
    def vulkan(self) -> int | None:
        """The Vulkan device index; None on the CPU."""
        return self._options.vulkan

    @property
    def _input_device(self) -> torch.device:
        return _CPU

    def _out_of_memory(self, exc: Exception) -> bool:
        # On the CPU a failure is not memory a smaller tile would free.
        return isinstance(exc, NcnnRunError) and self._options.vulkan is not None

    def _call(self, x: torch.Tensor) -> torch.Tensor:
        fast = self._networks.network(self._spec, self._options)
        return run_with_fallback(x, fast, None if self._options.fp32 else self._run_fp32)

    def _run_fp32(self, x: torch.Tensor) -> torch.Tensor:
        options = NcnnOptions(vulkan=self._options.vulkan, threads=self._options.threads, fp32=True)
        return self._networks.network(self._spec, options)(x)

    def _auto_tile_size(self, frames: int) -> int:
        free = None if self._budget_mb is None else self._budget_mb * _MB
        half = self._options.vulkan is not None and not self._options.fp32
        return auto_tile_size(self._spec, frames=frames, half=half, gpu_free_bytes=free)
