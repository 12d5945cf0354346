"""The fast GPU paths give the frames the fp32 path gives, within stated tolerances.

Tolerances, on 8-bit output frames against a true fp32 reference (TF32 off):
fp16 PSNR >= 45 dB and mean |diff| <= 0.5 levels; bf16 (8-bit mantissa)
PSNR >= 40 dB and mean |diff| <= 1 level; reordering the same arithmetic
(channels_last, batching, TF32 off) PSNR >= 50 dB. On a CPU, fp16 gives
~72 dB and bf16 ~54 dB for the ESRGAN models on these frames (Real-CUGAN's
fp16: ~60 dB on a 32x32 crop of the same photo), so the bounds leave
room for other kernels without letting a broken path (black, shifted or
NaN frames: < 20 dB) through. A batch whose fp16 output is not finite is
recomputed in fp32, whole.
"""

from __future__ import annotations

import math
from collections.abc import Iterator

import pytest
import skimage.data
import torch

from upres.domain.tasks import Factor
from upres.models.loader import ModelCache, load_descriptor
from upres.models.registry import get_model
from upres.models.specs import ModelSpec
from upres.pipeline.upscale import ModelUpscaler

pytestmark = pytest.mark.gpu

DEVICE = "cuda"
MODELS = ("realesr-animevideov3", "realesrgan-x4plus", "realcugan-se-x4")


@pytest.fixture(autouse=True)
def true_fp32() -> Iterator[None]:
    """TF32 (on by default for cuDNN convs) has fp16's mantissa: the reference must not use it."""
    saved = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
    yield
    torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = saved


@pytest.fixture(scope="module")
def frames() -> torch.Tensor:
    """Four 96x128 uint8 frames of a photograph, panning 3 pixels per frame."""
    photo = torch.from_numpy(skimage.data.astronaut().copy())
    return torch.stack([photo[80 : 80 + 96, 180 + 3 * i : 308 + 3 * i] for i in range(4)])


def psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    mse = (a.double() - b.double()).pow(2).mean().item()
    return math.inf if mse == 0 else 10 * math.log10(255.0**2 / mse)


def mean_abs(a: torch.Tensor, b: torch.Tensor) -> float:
    return (a.double() - b.double()).abs().mean().item()


def upscaler(model: str, *, half: bool, batch_size: int) -> ModelUpscaler:
    return ModelUpscaler(
        get_model(model), Factor.X4, device=DEVICE, half=half, batch_size=batch_size
    )


@pytest.fixture(scope="module", params=MODELS)
def model(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def reference(model: str, frames: torch.Tensor) -> torch.Tensor:
    return upscaler(model, half=False, batch_size=1).upscale(frames)


def test_fp16_matches_fp32(model: str, frames: torch.Tensor, reference: torch.Tensor) -> None:
    fast = upscaler(model, half=True, batch_size=1)
    assert fast.dtype == torch.float16
    out = fast.upscale(frames)
    assert out.shape == reference.shape
    assert out.dtype == torch.uint8
    assert psnr(out, reference) >= 45.0
    assert mean_abs(out, reference) <= 0.5


def test_batched_fp16_matches_fp32(
    model: str, frames: torch.Tensor, reference: torch.Tensor
) -> None:
    out = upscaler(model, half=True, batch_size=4).upscale(frames)
    assert psnr(out, reference) >= 45.0
    assert mean_abs(out, reference) <= 0.5


def test_batching_reorders_only(model: str, frames: torch.Tensor, reference: torch.Tensor) -> None:
    batched = upscaler(model, half=False, batch_size=3).upscale(frames)
    assert psnr(batched, reference) >= 50.0


def _network_output(
    spec: ModelSpec, frames: torch.Tensor, dtype: torch.dtype, *, channels_last: bool
) -> torch.Tensor:
    """Run the bare network (a private copy: the format change must not leak into a cache)."""
    network: torch.nn.Module = load_descriptor(spec, torch.device(DEVICE), dtype).model
    x = frames.to(DEVICE).permute(0, 3, 1, 2).to(dtype).div(255.0)
    if channels_last:
        network = network.to(memory_format=torch.channels_last)
        x = x.contiguous(memory_format=torch.channels_last)
    with torch.inference_mode():
        y: torch.Tensor = network(x)
    return y.float().clamp(0.0, 1.0).mul(255.0).round().to(torch.uint8).permute(0, 2, 3, 1).cpu()


@pytest.mark.parametrize(
    ("dtype", "min_psnr", "max_mean_abs"),
    [(torch.float32, 50.0, 0.1), (torch.float16, 45.0, 0.5), (torch.bfloat16, 40.0, 1.0)],
)
def test_channels_last_matches_fp32(
    model: str,
    frames: torch.Tensor,
    reference: torch.Tensor,
    dtype: torch.dtype,
    min_psnr: float,
    max_mean_abs: float,
) -> None:
    out = _network_output(get_model(model), frames, dtype, channels_last=True)
    assert out.shape == reference.shape
    assert psnr(out, reference) >= min_psnr
    assert mean_abs(out, reference) <= max_mean_abs


class PoisonedHalf:
    """A NetworkSource counting fp32 lookups; with ``poison`` its fp16 network returns an inf."""

    def __init__(self, *, poison: bool) -> None:
        self.cache = ModelCache()
        self.poison = poison
        self.fp32_calls = 0

    def network(self, spec: ModelSpec, device: torch.device, dtype: torch.dtype) -> torch.nn.Module:
        real = self.cache.network(spec, device, dtype)
        if dtype == torch.float32:
            self.fp32_calls += 1
            return real
        return _Poisoned(real) if self.poison else real


class _Poisoned(torch.nn.Module):
    def __init__(self, real: torch.nn.Module) -> None:
        super().__init__()
        self.real = real

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y: torch.Tensor = self.real(x)
        y[0, 0, 0, 0] = math.inf
        return y


def test_non_finite_fp16_batch_falls_back_to_fp32(frames: torch.Tensor) -> None:
    model = "realesr-animevideov3"
    source = PoisonedHalf(poison=True)
    fast = ModelUpscaler(
        get_model(model), Factor.X4, device=DEVICE, models=source, half=True, batch_size=2
    )
    out = fast.upscale(frames)
    exact = upscaler(model, half=False, batch_size=2).upscale(frames)
    assert source.fp32_calls == 2  # both batches of two were recomputed
    assert (out.int() - exact.int()).abs().max().item() <= 1


def test_finite_fp16_batch_stays_fp16(frames: torch.Tensor) -> None:
    source = PoisonedHalf(poison=False)
    fast = ModelUpscaler(
        get_model("realesr-animevideov3"), Factor.X4, device=DEVICE, models=source, half=True
    )
    fast.upscale(frames)
    assert source.fp32_calls == 0
