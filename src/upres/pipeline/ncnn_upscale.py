"""The model stage on the ncnn runtime: a ``FrameUpscaler`` on the CPU or a Vulkan device.

It keeps ``ModelUpscaler``'s contract and shares its steps (integer frames
to [0, 1] floats, padding, tiles with overlap, clamping, area downscale to
the factor, back to the input's integer type, uint16 included), so the
pipeline cannot tell which runtime ran the network. Only the network call
differs: ncnn, one frame at a time.
"""

from __future__ import annotations

from typing import Protocol

import torch

from upres.domain.tasks import Factor
from upres.models.ncnn_runtime import NcnnCache, NcnnOptions, NcnnRunError, vulkan_device
from upres.models.registry import ModelSpec, check_factor
from upres.models.tiling import Network, crop, pad_to
from upres.pipeline.upscale import (
    InterpolationMode,
    auto_tile_size,
    check_frames,
    resize,
    run_sized,
    run_with_fallback,
    to_packed_int,
    to_planar_float,
)

_CPU = torch.device("cpu")
_MB = 1 << 20


class NcnnSource(Protocol):
    """Where ``NcnnUpscaler`` gets networks from (``NcnnCache`` in production)."""

    def network(self, spec: ModelSpec, options: NcnnOptions) -> Network: ...


class NcnnUpscaler:
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
        check_factor(spec, factor)
        self._budget_mb = None if vulkan is None else vulkan_device(vulkan).heap_budget_mb
        self._spec = spec
        self._factor = factor
        self._options = NcnnOptions(
            vulkan=vulkan, threads=threads or torch.get_num_threads(), fp32=fp32
        )
        self._networks: NcnnSource = networks if networks is not None else NcnnCache()
        self._tile_size = tile_size
        self._downscale: InterpolationMode = downscale

    @property
    def scale(self) -> int:
        return int(self._factor)

    @property
    def batch_size(self) -> int:
        return 1

    @property
    def spec(self) -> ModelSpec:
        return self._spec

    @property
    def vulkan(self) -> int | None:
        """The Vulkan device index; None on the CPU."""
        return self._options.vulkan

    def upscale(self, pixels: torch.Tensor) -> torch.Tensor:
        """(N, H, W, 3) -> (N, H*scale, W*scale, 3), same dtype, CPU.

        Raises ModelError when the frames are malformed or the model fails on them.
        """
        check_frames(pixels)
        return torch.cat([self._upscale_one(pixels[i : i + 1]) for i in range(len(pixels))])

    def _upscale_one(self, pixels: torch.Tensor) -> torch.Tensor:
        x = to_planar_float(pixels, _CPU, torch.float32)
        with torch.inference_mode():
            y = self._infer(x)
            height, width = pixels.shape[1] * self.scale, pixels.shape[2] * self.scale
            y = resize(y, height=height, width=width, mode=self._downscale)
            return to_packed_int(y, pixels.dtype)

    def _infer(self, x: torch.Tensor) -> torch.Tensor:
        """Raises ModelError when ncnn fails even on the smallest tile."""
        padded, padding = pad_to(
            x, multiple_of=self._spec.multiple_of, min_size=self._spec.min_size
        )
        size = self._tile_size or self._auto_tile_size()
        while True:
            try:
                y = run_sized(padded, self._call, spec=self._spec, size=size)
                break
            except NcnnRunError:
                if self._options.vulkan is None:
                    raise
                step = self._spec.multiple_of
                size = min(size, max(padded.shape[-2:])) // 2 // step * step
        y = crop(y, padding, self._spec.scale)
        # Packing clamps anyway; only a downscale must see clamped values (as on PyTorch).
        return y.clamp_(0.0, 1.0) if self.scale != self._spec.scale else y

    def _call(self, x: torch.Tensor) -> torch.Tensor:
        fast = self._networks.network(self._spec, self._options)
        return run_with_fallback(x, fast, None if self._options.fp32 else self._run_fp32)

    def _run_fp32(self, x: torch.Tensor) -> torch.Tensor:
        options = NcnnOptions(vulkan=self._options.vulkan, threads=self._options.threads, fp32=True)
        return self._networks.network(self._spec, options)(x)

    def _auto_tile_size(self) -> int:
        free = None if self._budget_mb is None else self._budget_mb * _MB
        half = self._options.vulkan is not None and not self._options.fp32
        return auto_tile_size(self._spec, frames=1, half=half, gpu_free_bytes=free)
