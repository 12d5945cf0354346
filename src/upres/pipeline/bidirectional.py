"""Bidirectional video models (BasicVSR) as a ``FrameUpscaler``, one instance per video.

BasicVSR's backward branch needs the frames after the one it upscales. The
stage runs the network over windows of consecutive frames, the batches the
engine hands it (``batch_size``, ``CPU_WINDOW`` or ``GPU_WINDOW`` frames): the
backward branch sees the rest of the window, the forward branch is carried
from window to window (``Carry``), so every frame draws on all earlier frames
and memory stays flat in the video's length. A chunk's pre-roll primes the
forward branch as it does a recurrent model's state. What the windows cost
against the whole clip at once is in docs/QUALITY.md ("BasicVSR's windows").

Large frames run in spatial tiles (``upres.models.tiling``), each tile with
its own carry; a tiling that changes between windows (a smaller tile after
running out of memory) starts the forward branch afresh. On CUDA the network
runs in fp16 when the model allows it (its SpyNet stays fp32), with a window
whose output is not finite recomputed in fp32.
"""

from __future__ import annotations

import itertools
from typing import Protocol

import torch

from upres.domain.tasks import Factor
from upres.errors import ModelError
from upres.models.basicvsr import SCALE, BasicVSR, Carry
from upres.models.devices import torch_device
from upres.models.registry import check_factor
from upres.models.specs import ModelSpec
from upres.models.tiling import crop, pad_to
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

CPU_WINDOW = 16
GPU_WINDOW = 16


class BasicVSRSource(Protocol):
    """Where ``BidirectionalUpscaler`` gets networks from (``RecurrentNetworks``)."""

    def basicvsr(self, spec: ModelSpec, device: torch.device, dtype: torch.dtype) -> BasicVSR: ...


class BidirectionalUpscaler:
    """BasicVSR at ``factor`` (4x native; 2x and 1x area-downscaled), window by window."""

    def __init__(
        self,
        spec: ModelSpec,
        factor: Factor,
        *,
        networks: BasicVSRSource,
        device: str = "auto",
        window: int | None = None,
        tile_size: int | None = None,
        half: bool | None = None,
        downscale: InterpolationMode = "area",
    ) -> None:
        """Raises ModelError when the device is unavailable or ``factor`` > 4."""
        check_factor(spec, factor)
        self._spec = spec
        self._factor = factor
        self._device = torch_device(device)
        self._networks = networks
        on_gpu = self._device.type == "cuda"
        self._window = window or (GPU_WINDOW if on_gpu else CPU_WINDOW)
        self._tile_size = tile_size  # None: chosen on the first window, kept after
        use_half = half if half is not None else (on_gpu and spec.fp16)
        self._dtype = torch.float16 if use_half else torch.float32
        self._downscale: InterpolationMode = downscale
        self._carries: dict[tuple[int, int, int, int], Carry] = {}

    @property
    def factor(self) -> int:
        return int(self._factor)

    @property
    def batch_size(self) -> int:
        """The window: how many consecutive frames the network sees at once."""
        return self._window

    @property
    def device(self) -> torch.device:
        return self._device

    @property
    def dtype(self) -> torch.dtype:
        """The precision the network runs in first (fp32 is the fallback; SpyNet is fp32)."""
        return self._dtype

    def upscale(self, pixels: torch.Tensor) -> torch.Tensor:
        """(N, H, W, 3) -> (N, H*factor, W*factor, 3), same dtype, CPU; the next frames of
        the video, in order.

        Raises ModelError when the frames are malformed or the network fails on them.
        """
        check_frames(pixels)
        frames = to_planar_float(pixels, self._device, torch.float32)
        padded, padding = pad_to(frames, min_size=self._spec.min_size)
        with torch.inference_mode():
            big = self._infer(padded)
            big = crop(big, padding, SCALE).clamp_(0.0, 1.0)
            height, width = pixels.shape[1] * self.factor, pixels.shape[2] * self.factor
            return to_packed_int(
                resize(big, height=height, width=width, mode=self._downscale), pixels.dtype
            )

    def _infer(self, frames: torch.Tensor) -> torch.Tensor:
        """The window at 4x, halving the tile after running out of memory.

        Raises ModelError when the network fails or even the smallest tile does not fit.
        """
        if self._tile_size is None:
            # Sized for a whole window, so a short last window tiles (and carries) alike.
            self._tile_size = self._auto_tile_size(self._window)
        while True:
            try:
                return self._run_window(frames, self._tile_size)
            except torch.OutOfMemoryError:
                if self._device.type == "cuda":
                    torch.cuda.empty_cache()
                self._tile_size = min(self._tile_size, max(frames.shape[-2:])) // 2
            except (RuntimeError, ValueError) as exc:
                raise ModelError(f"model {self._spec.id} failed: {exc}") from exc

    def _run_window(self, frames: torch.Tensor, size: int) -> torch.Tensor:
        """The window in tiles of ``size``; the carries change only once it is all done."""
        fresh: dict[tuple[int, int, int, int], Carry] = {}

        def fast(x: torch.Tensor) -> torch.Tensor:
            return self._tiled(x, size, self._dtype, fresh)

        def safe(x: torch.Tensor) -> torch.Tensor:
            fresh.clear()
            return self._tiled(x, size, torch.float32, fresh)

        out = run_with_fallback(frames, fast, safe if self._dtype != torch.float32 else None)
        self._carries = fresh
        return out

    def _tiled(
        self,
        frames: torch.Tensor,
        size: int,
        dtype: torch.dtype,
        fresh: dict[tuple[int, int, int, int], Carry],
    ) -> torch.Tensor:
        network = self._networks.basicvsr(self._spec, self._device, dtype)
        order = itertools.count()
        height, width = frames.shape[-2:]

        def tile(x: torch.Tensor) -> torch.Tensor:
            # run_tiled visits the tiles in the same order for the same size and frame.
            key = (size, height, width, next(order))
            out: torch.Tensor
            out, fresh[key] = network(x, self._carries.get(key))
            return out

        return run_sized(frames, tile, spec=self._spec, size=size)

    def _auto_tile_size(self, frames: int) -> int:
        free = None
        if self._device.type == "cuda":
            free, _ = torch.cuda.mem_get_info(self._device)
        half = self._dtype == torch.float16
        return auto_tile_size(self._spec, frames=frames, half=half, gpu_free_bytes=free)
