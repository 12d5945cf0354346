"""Frame batches -> upscaled frame batches: the interpolation baseline and the model stage.

Both classes implement ``upres.pipeline.frames.FrameUpscaler``: they take
(N, H, W, 3) uint8/uint16 RGB CPU tensors and return (N, H*factor, W*factor, 3)
tensors of the same dtype on the CPU.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Literal, Protocol

import torch
from torch.nn import functional

from upres.domain.tasks import Factor
from upres.errors import ModelError
from upres.models.devices import torch_device
from upres.models.loader import ModelCache
from upres.models.registry import check_factor
from upres.models.specs import ModelSpec
from upres.models.tiling import Network, TileSpec, crop, pad_to, run_tiled, tile_side

InterpolationMode = Literal["bicubic", "bilinear", "area"]

# Tiles overlap by this many input pixels; the outer quarter of each overlap
# gets no weight because the network saw no context there.
TILE_OVERLAP = 32
_MIN_TILE = 4 * TILE_OVERLAP
# Peak activation memory allowed on the CPU, and the share of free GPU memory used.
_CPU_WORK_BYTES = 1 << 30
_GPU_FREE_SHARE = 0.5
_DEFAULT_GPU_BATCH = 4


def _full_scale(dtype: torch.dtype) -> float:
    """The integer value that stands for 1.0 in ``dtype``.

    Raises ModelError when ``dtype`` is not uint8 or uint16.
    """
    if dtype == torch.uint8:
        return 255.0
    if dtype == torch.uint16:
        return 65535.0
    raise ModelError(f"frames must be uint8 or uint16, got {dtype}")


def check_frames(pixels: torch.Tensor) -> None:
    """Raises ModelError when ``pixels`` is not an (N, H, W, 3) uint8/uint16 tensor."""
    _full_scale(pixels.dtype)
    if pixels.ndim != 4 or pixels.shape[-1] != 3:
        raise ModelError(f"frames must have shape (N, H, W, 3), got {tuple(pixels.shape)}")


def to_planar_float(pixels: torch.Tensor, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    """(N, H, W, 3) integer frames -> (N, 3, H, W) floats in [0, 1] on ``device``.

    The integer tensor is moved first so the widening to float happens on the device.
    """
    scale = _full_scale(pixels.dtype)
    moved = pixels.to(device, non_blocking=True).permute(0, 3, 1, 2)
    return moved.to(dtype).div_(scale)


def to_packed_int(planar: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """(N, 3, H, W) floats in [0, 1] -> (N, H, W, 3) contiguous CPU integers of ``dtype``."""
    scale = _full_scale(dtype)
    ints = planar.float().mul(scale).round_().clamp_(0.0, scale)
    # One copy narrows (on the source device, so a GPU sends the narrow type),
    # moves and interleaves; a permuted ``to`` then ``contiguous`` takes two passes.
    packed = torch.empty((ints.shape[0], *ints.shape[2:], 3), dtype=dtype)
    packed.permute(0, 3, 1, 2).copy_(ints)
    return packed


def resize(
    planar: torch.Tensor, *, height: int, width: int, mode: InterpolationMode
) -> torch.Tensor:
    """Resize (N, 3, H, W) floats; shrinking is antialiased so it does not alias fine detail."""
    if planar.shape[-2:] == (height, width):
        return planar
    if mode == "area":
        return functional.interpolate(planar, size=(height, width), mode="area")
    shrinking = height < planar.shape[-2] or width < planar.shape[-1]
    return functional.interpolate(
        planar, size=(height, width), mode=mode, align_corners=False, antialias=shrinking
    )


class InterpolationUpscaler:
    """A ``FrameUpscaler`` without a network: plain bicubic (or bilinear/area) resizing.

    It is the baseline of the quality bench and a fast real upscaler for
    pipeline tests. ``Factor.ENHANCE`` returns the frames unchanged.
    """

    def __init__(
        self,
        factor: Factor,
        *,
        mode: InterpolationMode = "bicubic",
        device: str = "cpu",
        batch_size: int = 1,
    ) -> None:
        self._factor = factor
        self._mode: InterpolationMode = mode
        self._device = torch.device(device)
        self._batch_size = batch_size

    @property
    def factor(self) -> int:
        return int(self._factor)

    @property
    def batch_size(self) -> int:
        return self._batch_size

    def upscale(self, pixels: torch.Tensor) -> torch.Tensor:
        """(N, H, W, 3) -> (N, H*factor, W*factor, 3), same dtype, CPU.

        Raises ModelError when ``pixels`` is not an (N, H, W, 3) uint8/uint16 tensor.
        """
        check_frames(pixels)
        planar = to_planar_float(pixels, self._device, torch.float32)
        height, width = pixels.shape[1] * self.factor, pixels.shape[2] * self.factor
        return to_packed_int(
            resize(planar, height=height, width=width, mode=self._mode), pixels.dtype
        )


class NetworkSource(Protocol):
    """Where ``ModelUpscaler`` gets networks from (``ModelCache`` in production)."""

    def network(
        self, spec: ModelSpec, device: torch.device, dtype: torch.dtype
    ) -> torch.nn.Module: ...


def run_with_fallback(x: torch.Tensor, fast: Network, safe: Network | None) -> torch.Tensor:
    """``fast(x)``; when its output has a NaN or an infinity, ``safe(x)`` instead.

    fp16 Real-ESRGAN can overflow to black or NaN frames (Real-ESRGAN issues
    #330, #632); the fp32 network does not, so it recomputes such a batch.
    """
    y = fast(x)
    if safe is None or bool(torch.isfinite(y).all()):
        return y
    return safe(x)


class TiledUpscaler(ABC):
    """The steps every network runtime shares, so the pipeline cannot tell which one ran:
    integer frames to [0, 1] floats in batches of ``batch_size``, padding to the
    model's size needs, tiles with overlap (halved after an out-of-memory error),
    cropping, clamping (``clamp_for_downscale``), the ``downscale`` to ``factor``
    and back to the input's integer type (uint16 included).

    A runtime says where frames go, how the network is called, how big a tile
    fits, which errors mean "out of memory" and what other errors become.
    """

    def __init__(
        self,
        spec: ModelSpec,
        factor: Factor,
        *,
        tile_size: int | None,
        downscale: InterpolationMode,
    ) -> None:
        """Raises ModelError when ``factor`` > the model's scale."""
        check_factor(spec, factor)
        self._spec = spec
        self._factor = factor
        self._tile_size = tile_size
        self._downscale: InterpolationMode = downscale

    @property
    def factor(self) -> int:
        return int(self._factor)

    @property
    @abstractmethod
    def batch_size(self) -> int: ...

    @property
    def spec(self) -> ModelSpec:
        return self._spec

    def upscale(self, pixels: torch.Tensor) -> torch.Tensor:
        """(N, H, W, 3) -> (N, H*factor, W*factor, 3), same dtype, CPU.

        Raises ModelError when the frames are malformed or the model fails on them.
        """
        check_frames(pixels)
        step = self.batch_size
        batches = [self._upscale_batch(pixels[i : i + step]) for i in range(0, len(pixels), step)]
        return torch.cat(batches)

    def _upscale_batch(self, pixels: torch.Tensor) -> torch.Tensor:
        x = to_planar_float(pixels, self._input_device, torch.float32)
        with torch.inference_mode():
            y = clamp_for_downscale(self._infer(x), factor=self._factor, spec=self._spec)
            height, width = pixels.shape[1] * self.factor, pixels.shape[2] * self.factor
            y = resize(y, height=height, width=width, mode=self._downscale)
            return to_packed_int(y, pixels.dtype)

    def _infer(self, x: torch.Tensor) -> torch.Tensor:
        """Run the network on padded frames, halving the tile size after an out-of-memory
        error; the output cropped to the frames, at the model's scale.

        Raises ModelError when the network fails, or even the smallest tile does not fit.
        """
        padded, padding = pad_to(
            x, multiple_of=self._spec.multiple_of, min_size=self._spec.min_size
        )
        size = self._tile_size or self._auto_tile_size(padded.shape[0])
        while True:
            try:
                y = run_sized(padded, self._call, spec=self._spec, size=size)
                break
            except Exception as exc:
                if not self._out_of_memory(exc):
                    failure = self._failure(exc)
                    if failure is None:
                        raise
                    raise failure from exc
                step = self._spec.multiple_of
                size = min(size, max(padded.shape[-2:])) // 2 // step * step
        return crop(y, padding, self._spec.scale)

    @property
    @abstractmethod
    def _input_device(self) -> torch.device:
        """Where the frames go as floats."""

    @abstractmethod
    def _call(self, x: torch.Tensor) -> torch.Tensor:
        """The network on (N, 3, h, w) floats: (N, 3, h*scale, w*scale) fp32."""

    @abstractmethod
    def _auto_tile_size(self, frames: int) -> int:
        """The tile side that fits ``frames`` frames at once on this device."""

    @abstractmethod
    def _out_of_memory(self, exc: Exception) -> bool:
        """Whether a smaller tile may succeed where ``exc`` was raised (memory is freed)."""

    def _failure(self, exc: Exception) -> ModelError | None:
        """The error to raise for ``exc`` (raised by the network, not out of memory)
        instead of it; None raises it as it is."""
        return None


def clamp_for_downscale(y: torch.Tensor, *, factor: Factor, spec: ModelSpec) -> torch.Tensor:
    """``y`` (the network's [0, 1] output) clamped to [0, 1] when it is downscaled to
    ``factor``: the average must not mix overshoot in. At the model's own scale
    the packing to integers clamps anyway (the same values), so it is left as is.
    """
    return y.clamp_(0.0, 1.0) if int(factor) != spec.scale else y


class ModelUpscaler(TiledUpscaler):
    """A ``FrameUpscaler`` that runs a registered model at ``factor`` on PyTorch.

    The model runs at its native scale; when ``factor`` is smaller the result
    is downscaled (``downscale``: area by default) to exactly ``factor`` times
    the input (``TiledUpscaler``). It computes in fp16 on CUDA when the model
    supports it (a non-finite batch is recomputed in fp32) and in fp32 on the CPU.
    """

    def __init__(
        self,
        spec: ModelSpec,
        factor: Factor,
        *,
        device: str = "auto",
        models: NetworkSource | None = None,
        tile_size: int | None = None,
        batch_size: int | None = None,
        half: bool | None = None,
        downscale: InterpolationMode = "area",
    ) -> None:
        """Raises ModelError when the device is unavailable or ``factor`` > the model's scale."""
        super().__init__(spec, factor, tile_size=tile_size, downscale=downscale)
        self._device = torch_device(device)
        self._models: NetworkSource = models if models is not None else ModelCache()
        on_gpu = self._device.type == "cuda"
        self._batch_size = batch_size or (_DEFAULT_GPU_BATCH if on_gpu else 1)
        use_half = half if half is not None else (on_gpu and spec.fp16)
        self._dtype = torch.float16 if use_half else torch.float32

    @property
    def batch_size(self) -> int:
        return self._batch_size

    @property
    def device(self) -> torch.device:
        return self._device

    @property
    def dtype(self) -> torch.dtype:
        """The precision the network runs in first (fp32 is the fallback)."""
        return self._dtype

    @property
    def _input_device(self) -> torch.device:
        return self._device

    def _out_of_memory(self, exc: Exception) -> bool:
        if not isinstance(exc, torch.OutOfMemoryError):
            return False
        if self._device.type == "cuda":
            torch.cuda.empty_cache()
        return True

    def _failure(self, exc: Exception) -> ModelError | None:
        if isinstance(exc, RuntimeError | ValueError):
            return ModelError(f"model {self._spec.id} failed: {exc}")
        return None

    def _call(self, x: torch.Tensor) -> torch.Tensor:
        safe = self._run_fp32 if self._dtype != torch.float32 else None
        return run_with_fallback(x, self._run_fast, safe).float()

    def _run_fast(self, x: torch.Tensor) -> torch.Tensor:
        network = self._models.network(self._spec, self._device, self._dtype)
        y: torch.Tensor = network(x.to(self._dtype))
        return y

    def _run_fp32(self, x: torch.Tensor) -> torch.Tensor:
        network = self._models.network(self._spec, self._device, torch.float32)
        y: torch.Tensor = network(x.float())
        return y

    def _auto_tile_size(self, frames: int) -> int:
        free = None
        if self._device.type == "cuda":
            free, _ = torch.cuda.mem_get_info(self._device)
        half = self._dtype == torch.float16
        return auto_tile_size(self._spec, frames=frames, half=half, gpu_free_bytes=free)


def run_sized(x: torch.Tensor, network: Network, *, spec: ModelSpec, size: int) -> torch.Tensor:
    """``network`` on the whole (padded) frames when they fit in ``size``, else on tiles.

    Raises ModelError when ``size`` is below the smallest useful tile.
    """
    if max(x.shape[-2:]) <= size:
        return network(x)
    if size < _MIN_TILE:
        raise ModelError(f"not enough memory for model {spec.id} (tile {size} px)")
    tiles = TileSpec(size=size, overlap=TILE_OVERLAP, margin=TILE_OVERLAP // 4)
    return run_tiled(x, network, scale=spec.scale, tiles=tiles, multiple_of=spec.multiple_of)


def auto_tile_size(
    spec: ModelSpec, *, frames: int, half: bool, gpu_free_bytes: float | None
) -> int:
    """The tile side for ``frames`` frames at once (fp16 storage when ``half``): the
    work memory within 1 GiB on the CPU, or half of ``gpu_free_bytes`` on a GPU."""
    bytes_per_pixel = spec.work_bytes_per_pixel * frames
    if half:
        bytes_per_pixel //= 2
    budget = float(_CPU_WORK_BYTES)
    if gpu_free_bytes is not None:
        budget = gpu_free_bytes * _GPU_FREE_SHARE
    return tile_side(
        budget_bytes=budget,
        bytes_per_pixel=bytes_per_pixel,
        elements_per_pixel=spec.widest_activation,
        multiple_of=spec.multiple_of,
    )
