"""The upscaling stage: exact output sizes, dtypes, batching, tiling and the fp16 fallback."""

from __future__ import annotations

import math
from dataclasses import replace

import pytest
import skimage.data
import torch
from torch import nn
from torch.nn import functional

from upres.domain.tasks import Factor
from upres.errors import ModelError
from upres.models.devices import torch_device
from upres.models.loader import ModelCache
from upres.models.registry import get_model
from upres.models.specs import ModelSpec
from upres.pipeline.frames import FrameUpscaler
from upres.pipeline.upscale import InterpolationUpscaler, ModelUpscaler, run_with_fallback

ODD = (17, 33)  # height, width


@pytest.fixture(scope="module")
def cache() -> ModelCache:
    return ModelCache()


def _frames(count: int, dtype: torch.dtype, size: tuple[int, int] = ODD) -> torch.Tensor:
    torch.manual_seed(1)
    top = 255 if dtype == torch.uint8 else 65535
    return torch.randint(0, top + 1, (count, *size, 3), dtype=torch.int32).to(dtype)


def _smooth_frames(height: int, width: int) -> torch.Tensor:
    ys = torch.linspace(0, 1, height)[:, None]
    xs = torch.linspace(0, 1, width)[None, :]
    planes = [ys * xs, (1 - ys) * xs, 0.5 + 0.4 * torch.sin(8 * xs + 5 * ys)]
    return (torch.stack(planes, -1)[None] * 255).round().to(torch.uint8)


@pytest.mark.parametrize("factor", list(Factor))
@pytest.mark.parametrize("dtype", [torch.uint8, torch.uint16])
def test_interpolation_sizes_and_dtypes(factor: Factor, dtype: torch.dtype) -> None:
    upscaler: FrameUpscaler = InterpolationUpscaler(factor)
    out = upscaler.upscale(_frames(2, dtype))
    assert out.shape == (2, ODD[0] * int(factor), ODD[1] * int(factor), 3)
    assert out.dtype == dtype
    assert upscaler.factor == int(factor)


def test_interpolation_enhance_is_identity_even_for_16_bit() -> None:
    frames = _frames(1, torch.uint16)
    assert torch.equal(InterpolationUpscaler(Factor.ENHANCE).upscale(frames), frames)


def test_interpolation_keeps_flat_colour() -> None:
    frames = torch.full((1, 9, 11, 3), 77, dtype=torch.uint8)
    out = InterpolationUpscaler(Factor.X4, mode="bicubic").upscale(frames)
    assert int(out.min()) == int(out.max()) == 77


@pytest.mark.parametrize(
    "bad",
    [torch.zeros(2, 8, 8, 3, dtype=torch.float32), torch.zeros(8, 8, 3, dtype=torch.uint8)],
)
def test_malformed_frames_are_a_model_error(bad: torch.Tensor) -> None:
    with pytest.raises(ModelError):
        InterpolationUpscaler(Factor.X2).upscale(bad)


@pytest.mark.parametrize("factor", list(Factor))
@pytest.mark.parametrize("dtype", [torch.uint8, torch.uint16])
def test_model_output_is_exactly_factor_times_odd_input(
    cache: ModelCache, factor: Factor, dtype: torch.dtype
) -> None:
    upscaler = ModelUpscaler(get_model("realesr-animevideov3"), factor, device="cpu", models=cache)
    out = upscaler.upscale(_frames(2, dtype))
    assert out.shape == (2, ODD[0] * int(factor), ODD[1] * int(factor), 3)
    assert out.dtype == dtype
    assert upscaler.batch_size == 1
    assert upscaler.dtype == torch.float32


@pytest.mark.slow
@pytest.mark.parametrize("factor", list(Factor))
def test_rrdbnet_output_size_for_odd_input(cache: ModelCache, factor: Factor) -> None:
    upscaler = ModelUpscaler(get_model("realesrgan-x4plus"), factor, device="cpu", models=cache)
    out = upscaler.upscale(_frames(1, torch.uint8, (9, 7)))
    assert out.shape == (1, 9 * int(factor), 7 * int(factor), 3)


def test_enhance_keeps_the_picture(cache: ModelCache) -> None:
    frames = _smooth_frames(24, 40)
    out = ModelUpscaler(
        get_model("realesr-animevideov3"), Factor.ENHANCE, device="cpu", models=cache
    ).upscale(frames)
    assert out.shape == frames.shape
    mse = float(((out.float() - frames.float()) / 255).pow(2).mean())
    # The anime model flattens the sine texture a little; noise would score about 8 dB.
    assert 10 * torch.log10(torch.tensor(1 / mse)) > 22


@pytest.mark.slow
def test_tiled_model_matches_untiled(cache: ModelCache) -> None:
    spec = get_model("realesr-animevideov3")
    frames = _smooth_frames(136, 160)
    whole = ModelUpscaler(spec, Factor.X4, device="cpu", models=cache).upscale(frames)
    tiled = ModelUpscaler(spec, Factor.X4, device="cpu", models=cache, tile_size=128).upscale(
        frames
    )
    difference = (whole.int() - tiled.int()).abs()
    assert int(difference.max()) <= 2
    assert float(difference.float().mean()) < 0.05


class _Recorder:
    """A NetworkSource serving a given module and recording what was asked of it."""

    def __init__(self, module: nn.Module) -> None:
        self.module = module
        self.requests: list[torch.dtype] = []
        self.shapes: list[tuple[int, ...]] = []

    def network(self, spec: ModelSpec, device: torch.device, dtype: torch.dtype) -> nn.Module:
        self.requests.append(dtype)
        recorder = self

        class _Wrapped(nn.Module):
            def forward(self, x: torch.Tensor) -> torch.Tensor:
                recorder.shapes.append(tuple(x.shape))
                return recorder.module.to(dtype)(x)

        return _Wrapped()


class _OverflowsInHalf(nn.Module):
    """Nearest 4x upscale computed through a value fp16 cannot hold (max 65504)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        big = x * 1e5
        return functional.interpolate(big, scale_factor=4, mode="nearest") / 1e5


def test_non_finite_half_batch_is_recomputed_in_fp32() -> None:
    source = _Recorder(_OverflowsInHalf())
    spec = get_model("realesr-animevideov3")
    upscaler = ModelUpscaler(spec, Factor.X4, device="cpu", models=source, half=True)
    frames = _frames(2, torch.uint8, (6, 5))
    out = upscaler.upscale(frames)
    expected = frames.repeat_interleave(4, 1).repeat_interleave(4, 2)
    assert upscaler.dtype == torch.float16
    assert torch.float16 in source.requests
    assert torch.float32 in source.requests
    assert int((out.int() - expected.int()).abs().max()) <= 1


@pytest.mark.slow
def test_real_fp16_network_matches_fp32(cache: ModelCache) -> None:
    """The fp16 path with real weights (the GPU's default) on the CPU, where CI can run it.

    Same bounds as tests/gpu/test_fast_paths.py: PSNR >= 45 dB and mean |diff|
    <= 0.5 levels against fp32 (measured here: ~62 dB, 0.04 levels).
    """
    photo = torch.from_numpy(skimage.data.astronaut().copy())
    frames = torch.stack([photo[80:128, 180 + 3 * i : 244 + 3 * i] for i in range(2)])
    spec = get_model("realesr-animevideov3")
    fast = ModelUpscaler(spec, Factor.X4, device="cpu", models=cache, half=True, batch_size=2)
    reference = ModelUpscaler(spec, Factor.X4, device="cpu", models=cache).upscale(frames)
    out = fast.upscale(frames)
    assert fast.dtype == torch.float16
    assert out.dtype == torch.uint8
    assert out.shape == reference.shape
    diff = out.double() - reference.double()
    assert 10 * math.log10(255.0**2 / float(diff.square().mean())) >= 45.0
    assert float(diff.abs().mean()) <= 0.5


def test_finite_half_batch_is_not_recomputed() -> None:
    class _Nearest(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return functional.interpolate(x, scale_factor=4, mode="nearest")

    source = _Recorder(_Nearest())
    upscaler = ModelUpscaler(
        get_model("realesr-animevideov3"), Factor.X4, device="cpu", models=source, half=True
    )
    upscaler.upscale(_frames(1, torch.uint8, (6, 5)))
    assert source.requests == [torch.float16]


def test_run_with_fallback_without_safe_returns_the_fast_result() -> None:
    x = torch.ones(1)
    result = run_with_fallback(x, lambda t: t / 0, None)
    assert torch.isinf(result).all()
    assert torch.equal(
        run_with_fallback(x, lambda t: t / 0, lambda t: t * 2), torch.full((1,), 2.0)
    )


def test_batches_are_split_to_batch_size() -> None:
    class _Nearest(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return functional.interpolate(x, scale_factor=4, mode="nearest")

    source = _Recorder(_Nearest())
    upscaler = ModelUpscaler(
        get_model("realesr-animevideov3"), Factor.X2, device="cpu", models=source, batch_size=2
    )
    out = upscaler.upscale(_frames(5, torch.uint8, (6, 5)))
    assert out.shape == (5, 12, 10, 3)
    assert [shape[0] for shape in source.shapes] == [2, 2, 1]


def test_large_frames_are_tiled_within_the_memory_budget() -> None:
    class _Nearest(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return functional.interpolate(x, scale_factor=4, mode="nearest")

    # 1 GiB budget / 64 KiB per pixel -> tiles of 128 px.
    spec = replace(get_model("realesr-animevideov3"), work_bytes_per_pixel=65_536)
    source = _Recorder(_Nearest())
    frames = _frames(1, torch.uint8, (300, 200))
    out = ModelUpscaler(spec, Factor.X4, device="cpu", models=source).upscale(frames)
    assert torch.equal(out, frames.repeat_interleave(4, 1).repeat_interleave(4, 2))
    assert max(max(shape[-2:]) for shape in source.shapes) <= 128
    assert len(source.shapes) > 1


def test_network_failure_is_a_model_error() -> None:
    class _Broken(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            raise RuntimeError("CUDA error: an illegal memory access was encountered")

    upscaler = ModelUpscaler(
        get_model("realesr-animevideov3"), Factor.X4, device="cpu", models=_Recorder(_Broken())
    )
    with pytest.raises(ModelError, match="illegal memory access"):
        upscaler.upscale(_frames(1, torch.uint8, (4, 4)))


def test_factor_above_native_scale_is_a_model_error() -> None:
    two_x = replace(get_model("realesr-animevideov3"), scale=2)
    with pytest.raises(ModelError, match="2x, not 4x"):
        ModelUpscaler(two_x, Factor.X4, device="cpu")


def test_unknown_device_is_a_model_error() -> None:
    with pytest.raises(ModelError, match="unknown device"):
        torch_device("tpu")


@pytest.mark.skipif(torch.cuda.is_available(), reason="CUDA is available here")
def test_cuda_without_cuda_is_a_model_error() -> None:
    with pytest.raises(ModelError, match="not available"):
        torch_device("cuda")
    assert torch_device("auto") == torch.device("cpu")


def test_out_of_memory_halves_the_tile_until_it_fits() -> None:
    class _SmallMemory(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            if x.shape[-1] * x.shape[-2] > 150 * 150:
                raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
            return functional.interpolate(x, scale_factor=4, mode="nearest")

    source = _Recorder(_SmallMemory())
    frames = _frames(1, torch.uint8, (300, 260))
    upscaler = ModelUpscaler(
        get_model("realesr-animevideov3"), Factor.X4, device="cpu", models=source
    )
    out = upscaler.upscale(frames)
    assert torch.equal(out, frames.repeat_interleave(4, 1).repeat_interleave(4, 2))
    assert max(max(shape[-2:]) for shape in source.shapes) == 300
    assert max(shape[-2] * shape[-1] for shape in source.shapes[1:]) <= 150 * 150


def test_out_of_memory_below_the_smallest_tile_is_a_model_error() -> None:
    class _NoMemory(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            raise torch.OutOfMemoryError("CUDA out of memory")

    upscaler = ModelUpscaler(
        get_model("realesr-animevideov3"), Factor.X4, device="cpu", models=_Recorder(_NoMemory())
    )
    with pytest.raises(ModelError, match="not enough memory"):
        upscaler.upscale(_frames(1, torch.uint8, (300, 300)))
