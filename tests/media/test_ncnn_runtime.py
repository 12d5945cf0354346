"""The ncnn runtime: the same frames as PyTorch on the CPU and on Vulkan, tiles, 16-bit frames,
fp32 recomputation, and which device and runtime a model gets.

Vulkan runs on whatever device the machine has; CI has Mesa's llvmpipe (Vulkan on
the CPU, about 24 s for a 320x180 frame of the compact model), so the Vulkan
frames here are tiny. Vulkan tests are marked ``vulkan``: they skip only when there is no
Vulkan device at all.
"""

from __future__ import annotations

from dataclasses import replace

import pytest
import skimage.data
import torch
from torch.nn import functional

from upres.domain.media import EncodeSettings
from upres.domain.tasks import Factor
from upres.errors import ModelError
from upres.models import devices as devices_module
from upres.models import ncnn_runtime
from upres.models.devices import Device, resolve_device
from upres.models.ncnn_runtime import (
    NcnnCache,
    NcnnOptions,
    NcnnRunError,
    VulkanDevice,
    VulkanKind,
    vulkan_devices,
)
from upres.models.registry import (
    CPU_RUNTIMES,
    MODELS,
    cpu_runtime,
    get_model,
    resolve_model,
    runtimes,
)
from upres.models.specs import ModelSpec, Runtime
from upres.models.tiling import Network
from upres.pipeline.ncnn_upscale import NcnnUpscaler
from upres.pipeline.runtimes import build_upscaler, encoding_for, place
from upres.pipeline.upscale import ModelUpscaler

# ncnn on the CPU computes in fp32 like PyTorch: well inside one 8-bit level.
CPU_TOLERANCE = 2 / 255
# On a GPU ncnn stores activations in fp16: measured max difference 0.026-0.033 on [0, 1]
# (llvmpipe, compact model and x4plus); the bound leaves a little room above that.
VULKAN_TOLERANCE = 0.04

COMPACT = get_model("realesr-animevideov3")
X4PLUS = get_model("realesrgan-x4plus")


def frames16(count: int, height: int, width: int, *, seed: int = 0) -> torch.Tensor:
    """uint16 frames of smooth gradients plus noise: values 8-bit frames cannot hold."""
    g = torch.Generator().manual_seed(seed)
    ys = torch.linspace(0, 1, height)[:, None, None]
    xs = torch.linspace(0, 1, width)[None, :, None]
    base = torch.cat([ys * xs, ys * (1 - xs), (1 - ys) * xs], dim=-1)
    noisy = (base + 0.04 * torch.randn((count, height, width, 3), generator=g)).clamp(0, 1)
    return (noisy * 65535).round().to(torch.int32).to(torch.uint16)


def as_unit(frames: torch.Tensor) -> torch.Tensor:
    return frames.to(torch.float32) / 65535


def max_diff(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((as_unit(a) - as_unit(b)).abs().max())


@pytest.fixture(scope="module")
def networks() -> NcnnCache:
    return NcnnCache()


# The 23-block x4plus takes minutes on a busy 2-core CPU even on 16x16 frames.
BOTH = [COMPACT, pytest.param(X4PLUS, marks=pytest.mark.slow)]


@pytest.mark.parametrize("spec", BOTH, ids=lambda spec: spec.id)
def test_ncnn_on_the_cpu_matches_pytorch_on_16_bit_frames(
    spec: ModelSpec, networks: NcnnCache
) -> None:
    pixels = frames16(2, 16, 20)
    expected = ModelUpscaler(spec, Factor.X4, device="cpu").upscale(pixels)
    actual = NcnnUpscaler(spec, Factor.X4, networks=networks).upscale(pixels)
    assert actual.shape == expected.shape == (2, 64, 80, 3)
    assert actual.dtype == torch.uint16
    assert max_diff(actual, expected) < CPU_TOLERANCE
    # Full 16-bit precision: not 8-bit levels widened (multiples of 257).
    assert bool((actual.to(torch.int32) % 257 != 0).float().mean() > 0.9)


@pytest.mark.vulkan
@pytest.mark.parametrize("spec", BOTH, ids=lambda spec: spec.id)
def test_vulkan_matches_the_cpu_and_pytorch(spec: ModelSpec, networks: NcnnCache) -> None:
    pixels = frames16(1, 16, 16, seed=1)
    on_vulkan = NcnnUpscaler(spec, Factor.X4, vulkan=0, networks=networks).upscale(pixels)
    on_cpu = NcnnUpscaler(spec, Factor.X4, networks=networks).upscale(pixels)
    with_pytorch = ModelUpscaler(spec, Factor.X4, device="cpu").upscale(pixels)
    assert on_vulkan.shape == (1, 64, 64, 3)
    assert on_vulkan.dtype == torch.uint16
    assert max_diff(on_vulkan, on_cpu) < VULKAN_TOLERANCE
    assert max_diff(on_vulkan, with_pytorch) < VULKAN_TOLERANCE
    # fp16 storage really is in use: Vulkan is close to, but not the same as, fp32.
    assert max_diff(on_vulkan, on_cpu) > 1e-4


@pytest.mark.vulkan
def test_vulkan_factor_2_of_an_odd_8_bit_frame_is_exactly_twice_the_size(
    networks: NcnnCache,
) -> None:
    pixels = (as_unit(frames16(1, 13, 17)) * 255).round().to(torch.uint8)
    out = NcnnUpscaler(COMPACT, Factor.X2, vulkan=0, networks=networks).upscale(pixels)
    expected = ModelUpscaler(COMPACT, Factor.X2, device="cpu").upscale(pixels)
    assert out.shape == (1, 26, 34, 3)
    assert out.dtype == torch.uint8
    assert float((out.float() - expected.float()).abs().max()) / 255 < VULKAN_TOLERANCE


@pytest.mark.parametrize(
    ("model_id", "denoise", "factor"),
    [
        ("realcugan-se-x2", 2, Factor.X2),
        pytest.param("realcugan-se-x4", 0, Factor.X4, marks=pytest.mark.slow),
        # A 3x network serves 2x: its output area-downscaled.
        pytest.param("realcugan-pro-x3", 3, Factor.X2, marks=pytest.mark.slow),
    ],
)
def test_realcugan_on_ncnn_matches_pytorch_on_an_odd_frame(
    model_id: str, denoise: int, factor: Factor, networks: NcnnCache
) -> None:
    spec = resolve_model(model_id, denoise)
    pixels = frames16(1, 23, 37, seed=4)
    expected = ModelUpscaler(spec, factor, device="cpu").upscale(pixels)
    actual = NcnnUpscaler(spec, factor, networks=networks).upscale(pixels)
    assert actual.shape == expected.shape == (1, 23 * int(factor), 37 * int(factor), 3)
    assert max_diff(actual, expected) < CPU_TOLERANCE


def test_each_denoise_level_is_its_own_network(networks: NcnnCache) -> None:
    pixels = frames16(1, 20, 20, seed=5)
    plain, strong = resolve_model("realcugan-se-x2"), resolve_model("realcugan-se-x2", 3)
    assert networks.network(plain, OPTIONS) is not networks.network(strong, OPTIONS)
    assert networks.network(plain, OPTIONS) is networks.network(resolve_model(plain.id), OPTIONS)
    smooth = NcnnUpscaler(strong, Factor.X2, networks=networks).upscale(pixels)
    kept = NcnnUpscaler(plain, Factor.X2, networks=networks).upscale(pixels)
    # Denoising removes the frames' noise: its output varies less from pixel to pixel.
    assert _roughness(smooth) < 0.8 * _roughness(kept)


OPTIONS = NcnnOptions(vulkan=None, threads=2)


@pytest.mark.slow
def test_realcugan_tiles_stay_close_to_the_whole_frame(networks: NcnnCache) -> None:
    # Each tile's squeeze-and-excitation layers see only the tile's means, so tiles
    # change the result a little everywhere (no syncgap): measured 43.1 dB PSNR,
    # mean 1.0 of an 8-bit level, on this photo in 2 tiles.
    photo = torch.from_numpy(skimage.data.astronaut().copy()).permute(2, 0, 1)[None].float()
    small = functional.interpolate(photo, size=(120, 400), mode="area")
    pixels = small[0].permute(1, 2, 0).round().to(torch.uint8)[None].contiguous()
    spec = resolve_model("realcugan-se-x2")
    whole = NcnnUpscaler(spec, Factor.X2, networks=networks, tile_size=4096).upscale(pixels)
    tiled = NcnnUpscaler(spec, Factor.X2, networks=networks, tile_size=224).upscale(pixels)
    assert tiled.shape == whole.shape == (1, 240, 800, 3)
    error = (tiled.double() - whole.double()).pow(2).mean().item()
    assert 0 < error < 255**2 / 10**4.0  # PSNR above 40 dB


@pytest.mark.vulkan
def test_realcugan_on_vulkan_matches_the_cpu(networks: NcnnCache) -> None:
    spec = resolve_model("realcugan-se-x2")
    pixels = frames16(1, 23, 37, seed=6)
    on_vulkan = NcnnUpscaler(spec, Factor.X2, vulkan=0, networks=networks).upscale(pixels)
    on_cpu = NcnnUpscaler(spec, Factor.X2, networks=networks).upscale(pixels)
    assert on_vulkan.shape == (1, 46, 74, 3)
    assert max_diff(on_vulkan, on_cpu) < VULKAN_TOLERANCE


def _roughness(frames: torch.Tensor) -> float:
    unit = as_unit(frames)
    return float((unit[:, 1:] - unit[:, :-1]).abs().mean())


@pytest.mark.slow
def test_tiles_leave_no_seams(networks: NcnnCache) -> None:
    pixels = frames16(1, 150, 300, seed=2)
    whole = NcnnUpscaler(COMPACT, Factor.X4, networks=networks).upscale(pixels)
    tiled = NcnnUpscaler(COMPACT, Factor.X4, networks=networks, tile_size=128).upscale(pixels)
    assert tiled.shape == whole.shape == (1, 600, 1200, 3)
    # The blend hides the seams: measured max 0.0018 (half an 8-bit level), only
    # where a tile's edge cut the network's context short.
    assert max_diff(tiled, whole) < 1 / 255
    assert float((as_unit(tiled) - as_unit(whole)).abs().mean()) < 1e-4


class Failing:
    """Real CPU networks that fail like a GPU out of memory on inputs over ``limit`` px."""

    def __init__(self, limit: int, networks: NcnnCache) -> None:
        self.limit, self.networks, self.sizes = limit, networks, list[int]()

    def network(self, spec: ModelSpec, options: NcnnOptions) -> Network:
        real = self.networks.network(spec, replace(options, vulkan=None))

        def run(x: torch.Tensor) -> torch.Tensor:
            self.sizes.append(max(x.shape[-2:]))
            if max(x.shape[-2:]) > self.limit:
                raise NcnnRunError("ncnn failed (status -100)")
            return real(x)

        return run


@pytest.mark.vulkan
@pytest.mark.slow
def test_a_tile_the_gpu_cannot_run_is_halved(networks: NcnnCache) -> None:
    failing = Failing(200, networks)
    pixels = frames16(1, 150, 300, seed=3)
    upscaler = NcnnUpscaler(COMPACT, Factor.X4, vulkan=0, networks=failing, tile_size=400)
    out = upscaler.upscale(pixels)
    expected = NcnnUpscaler(COMPACT, Factor.X4, networks=networks).upscale(pixels)
    assert failing.sizes[0] == 300
    assert max(failing.sizes[1:]) <= 150
    assert max_diff(out, expected) < 1 / 255


def test_on_the_cpu_an_ncnn_failure_is_a_model_error(networks: NcnnCache) -> None:
    upscaler = NcnnUpscaler(COMPACT, Factor.X4, networks=Failing(8, networks))
    with pytest.raises(ModelError, match="status -100"):
        upscaler.upscale(frames16(1, 16, 16))


class NonFinite:
    """A fast network whose output has a NaN, and the real fp32 one."""

    def __init__(self, networks: NcnnCache) -> None:
        self.networks, self.calls = networks, list[bool]()

    def network(self, spec: ModelSpec, options: NcnnOptions) -> Network:
        self.calls.append(options.fp32)
        real = self.networks.network(spec, options)
        if options.fp32:
            return real
        return lambda x: real(x) * float("nan")


def test_a_non_finite_frame_is_recomputed_in_fp32(networks: NcnnCache) -> None:
    source = NonFinite(networks)
    pixels = frames16(1, 16, 16)
    out = NcnnUpscaler(COMPACT, Factor.X4, networks=source).upscale(pixels)
    expected = ModelUpscaler(COMPACT, Factor.X4, device="cpu").upscale(pixels)
    assert source.calls == [False, True]
    assert max_diff(out, expected) < CPU_TOLERANCE


def test_malformed_frames_and_too_large_a_factor_are_model_errors() -> None:
    with pytest.raises(ModelError, match="uint8 or uint16"):
        NcnnUpscaler(COMPACT, Factor.X4).upscale(torch.zeros((1, 4, 4, 3), dtype=torch.float32))
    with pytest.raises(ModelError, match="upscales 2x, not 4x"):
        NcnnUpscaler(replace(COMPACT, scale=2), Factor.X4)


def test_a_model_without_an_ncnn_form_is_pytorch_only() -> None:
    # Architectures the ncnn files do not describe (the temporal and flow networks).
    pytorch_only = replace(COMPACT, id="pytorch-only", architecture="OtherNet")  # type: ignore[arg-type]
    assert runtimes(pytorch_only) == (Runtime.PYTORCH,)
    assert cpu_runtime(pytorch_only) is Runtime.PYTORCH
    with pytest.raises(ModelError, match="no ncnn form"):
        NcnnCache().network(pytorch_only, NcnnOptions(vulkan=None, threads=1))
    on_vulkan = place(pytorch_only, Device(kind="vulkan", vulkan=0))
    assert on_vulkan.runtime is Runtime.PYTORCH
    assert on_vulkan.device == Device(kind="cpu")


def test_x264_goes_faster_only_when_every_model_is_fast_on_a_gpu() -> None:
    fast, slow = get_model("realesr-animevideov3"), get_model("realesrgan-x4plus")
    cuda, cpu = Device(kind="cuda"), Device(kind="cpu")
    assert encoding_for(EncodeSettings(), [fast], cuda).preset == "veryfast"
    assert encoding_for(EncodeSettings(), [fast, slow], cuda).preset is None
    assert encoding_for(EncodeSettings(), [fast], cpu).preset is None
    assert encoding_for(EncodeSettings(preset="slow"), [fast], cuda).preset == "slow"


def test_every_ncnn_model_has_a_measured_cpu_runtime() -> None:
    # registry.CPU_RUNTIMES is filled from `make bench-throughput`; a new model needs a row.
    for spec in MODELS:
        if Runtime.NCNN in runtimes(spec):
            assert spec.id in CPU_RUNTIMES, spec.id
    assert cpu_runtime(COMPACT) is Runtime.NCNN
    assert cpu_runtime(X4PLUS) is Runtime.NCNN


def test_the_cpu_runs_each_model_on_its_faster_runtime() -> None:
    cpu = resolve_device("cpu")
    pytorch_only = replace(COMPACT, id="pytorch-only", architecture="OtherNet")  # type: ignore[arg-type]
    assert isinstance(build_upscaler(X4PLUS, Factor.X2, place(X4PLUS, cpu)), NcnnUpscaler)
    on_pytorch = build_upscaler(pytorch_only, Factor.X2, place(pytorch_only, cpu))
    assert isinstance(on_pytorch, ModelUpscaler)


LLVMPIPE = VulkanDevice(index=0, name="llvmpipe", kind=VulkanKind.CPU, heap_budget_mb=1024)
RADEON = VulkanDevice(index=1, name="AMD Radeon", kind=VulkanKind.DISCRETE, heap_budget_mb=8192)


def given_devices(monkeypatch: pytest.MonkeyPatch, *devices: VulkanDevice, cuda: bool) -> None:
    """What this machine cannot vary for real: its GPUs."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: cuda)
    monkeypatch.setattr(ncnn_runtime, "vulkan_devices", lambda: devices)
    monkeypatch.setattr(devices_module, "vulkan_devices", lambda: devices)


def test_auto_never_takes_software_vulkan_for_a_gpu(monkeypatch: pytest.MonkeyPatch) -> None:
    given_devices(monkeypatch, LLVMPIPE, cuda=False)
    assert resolve_device("auto") == Device(kind="cpu")
    assert resolve_device("auto", vulkan=0) == Device(kind="cpu")
    # Asked for by name, it is used.
    assert resolve_device("vulkan") == Device(kind="vulkan", vulkan=0)
    assert not place(COMPACT, resolve_device("vulkan")).on_gpu


def test_auto_on_this_machine_is_not_llvmpipe() -> None:
    found = resolve_device("auto")
    if found.kind == "vulkan":
        assert found.vulkan is not None
        assert vulkan_devices()[found.vulkan].is_gpu
    else:
        assert not any(device.is_gpu for device in vulkan_devices())


def test_auto_takes_cuda_then_the_first_vulkan_gpu(monkeypatch: pytest.MonkeyPatch) -> None:
    given_devices(monkeypatch, LLVMPIPE, RADEON, cuda=True)
    assert resolve_device("auto") == Device(kind="cuda")
    given_devices(monkeypatch, LLVMPIPE, RADEON, cuda=False)
    assert resolve_device("auto") == Device(kind="vulkan", vulkan=1)
    assert resolve_device("vulkan") == Device(kind="vulkan", vulkan=1)
    assert resolve_device("vulkan", vulkan=0) == Device(kind="vulkan", vulkan=0)
    where = place(X4PLUS, resolve_device("auto"))
    assert (where.runtime, where.on_gpu) == (Runtime.NCNN, True)


def test_missing_devices_are_model_errors(monkeypatch: pytest.MonkeyPatch) -> None:
    given_devices(monkeypatch, cuda=False)
    assert resolve_device("auto") == Device(kind="cpu")
    with pytest.raises(ModelError, match="no Vulkan device found: install the Vulkan loader"):
        resolve_device("vulkan")
    with pytest.raises(ModelError, match="CUDA is not available"):
        resolve_device("cuda")
    given_devices(monkeypatch, LLVMPIPE, cuda=False)
    with pytest.raises(ModelError, match=r"Vulkan device 3 does not exist \(Vulkan devices: 0"):
        resolve_device("vulkan", vulkan=3)
    with pytest.raises(ModelError, match="unknown device 'tpu'"):
        resolve_device("tpu")
