"""ModelUpscaler on CUDA: fp16 against fp32, GPU against CPU, batching and tiling.

Tolerances are in 8-bit levels of the output: fp16 rounding inside a deep
GAN moves some pixels by a few levels, never the picture.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from skimage import data

from upres.domain.tasks import Factor
from upres.models.loader import ModelCache
from upres.models.registry import get_model
from upres.pipeline.upscale import ModelUpscaler

pytestmark = pytest.mark.gpu

FP16_MEAN_LEVELS = 0.5
FP16_MAX_LEVELS = 16
DEVICE_MAX_LEVELS = 2


@pytest.fixture(scope="module")
def cache() -> ModelCache:
    return ModelCache()


def _photo(count: int, size: int) -> torch.Tensor:
    image = np.ascontiguousarray(data.astronaut()[100 : 100 + size, 180 : 180 + size])
    return torch.from_numpy(image)[None].repeat(count, 1, 1, 1)


def _levels(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return (a.int() - b.int()).abs().float()


@pytest.mark.parametrize("model_id", ["realesrgan-x4plus", "realesr-animevideov3"])
def test_fp16_matches_fp32(cache: ModelCache, model_id: str) -> None:
    spec = get_model(model_id)
    frames = _photo(2, 96)
    half = ModelUpscaler(spec, Factor.X4, device="cuda", models=cache)
    full = ModelUpscaler(spec, Factor.X4, device="cuda", models=cache, half=False)
    assert half.dtype == torch.float16
    difference = _levels(half.upscale(frames), full.upscale(frames))
    assert float(difference.mean()) < FP16_MEAN_LEVELS
    assert float(difference.max()) <= FP16_MAX_LEVELS


def test_cuda_fp32_matches_cpu(cache: ModelCache) -> None:
    spec = get_model("realesr-animevideov3")
    frames = _photo(1, 48)
    gpu = ModelUpscaler(spec, Factor.X2, device="cuda", models=cache, half=False)
    cpu = ModelUpscaler(spec, Factor.X2, device="cpu", models=cache)
    assert float(_levels(gpu.upscale(frames), cpu.upscale(frames)).max()) <= DEVICE_MAX_LEVELS


def test_gpu_batches_and_odd_sizes(cache: ModelCache) -> None:
    upscaler = ModelUpscaler(get_model("realesrgan-x4plus"), Factor.X2, device="cuda", models=cache)
    assert upscaler.batch_size > 1
    frames = _photo(5, 64)[:, :33, :17]
    out = upscaler.upscale(frames)
    assert out.shape == (5, 66, 34, 3)
    assert out.dtype == torch.uint8
    assert out.device.type == "cpu"


def test_gpu_tiling_matches_whole_frame(cache: ModelCache) -> None:
    spec = get_model("realesr-animevideov3")
    frames = _photo(1, 300)
    whole = ModelUpscaler(spec, Factor.X4, device="cuda", models=cache, half=False)
    tiled = ModelUpscaler(spec, Factor.X4, device="cuda", models=cache, half=False, tile_size=160)
    difference = _levels(whole.upscale(frames), tiled.upscale(frames))
    assert float(difference.mean()) < 0.1
    assert float(difference.max()) <= 4


def test_uint16_frames_on_gpu(cache: ModelCache) -> None:
    frames = _photo(1, 32).to(torch.int32).mul(257).to(torch.uint16)
    upscaler = ModelUpscaler(
        get_model("realesr-animevideov3"), Factor.X4, device="cuda", models=cache
    )
    out = upscaler.upscale(frames)
    assert out.dtype == torch.uint16
    assert out.shape == (1, 128, 128, 3)
