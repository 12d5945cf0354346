"""GPU slots: the one rule ``upres serve``, ``upres worker`` and ``upres upscale --workers``
share for which GPU each worker process takes (no GPU needed: the devices are given)."""

from __future__ import annotations

import pytest

from upres.cli._chunked import default_workers
from upres.config import load_settings
from upres.errors import ConfigError
from upres.models.devices import Device, GpuSlots, gpu_slots
from upres.models.ncnn_runtime import VulkanDevice, VulkanKind

CUDA = Device(kind="cuda")
CPU = Device(kind="cpu")
VULKAN = Device(kind="vulkan", vulkan=1)
LLVMPIPE = VulkanDevice(index=0, name="llvmpipe", kind=VulkanKind.CPU, heap_budget_mb=1024)
RADEON = VulkanDevice(index=1, name="AMD Radeon", kind=VulkanKind.DISCRETE, heap_budget_mb=8192)
ARC = VulkanDevice(index=2, name="Intel Arc", kind=VulkanKind.DISCRETE, heap_budget_mb=8192)


def no_vulkan() -> tuple[VulkanDevice, ...]:
    raise AssertionError("CUDA workers must not probe Vulkan")


def _slots(
    target: Device, *, cuda: int = 0, vulkan: tuple[VulkanDevice, ...] = (), **env: object
) -> GpuSlots:
    """The slots of workers on ``target``, with ``env`` the settings given."""
    return gpu_slots(
        load_settings(**env),
        target,
        cuda_count=lambda: cuda,
        vulkan=(lambda: vulkan) if target.kind == "vulkan" else no_vulkan,
    )


def test_cuda_workers_take_the_gpus_upres_gpus_names() -> None:
    slots = _slots(CUDA, cuda=4, gpus=(3, 1))
    assert slots == GpuSlots(gpus=(3, 1), vulkan=False)
    assert [slots.gpu_for(k) for k in range(3)] == [3, 1, 3]
    assert default_workers(slots) == 2
    assert slots.on_cuda


def test_cuda_workers_take_every_gpu_unless_told() -> None:
    assert _slots(CUDA, cuda=3) == GpuSlots(gpus=(0, 1, 2), vulkan=False)
    assert default_workers(_slots(CPU, cuda=0)) == 1
    assert _slots(CPU, cuda=2, device="cpu", gpus=(1,)).gpus == ()


def test_a_gpu_that_is_not_there_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match=r"UPRES_GPUS names GPU 2, but torch sees 2 GPU\(s\)"):
        _slots(CUDA, cuda=2, gpus=(0, 2))


def test_vulkan_workers_take_hardware_gpus_or_those_named() -> None:
    found = (LLVMPIPE, RADEON, ARC)
    assert _slots(VULKAN, vulkan=found, device="vulkan") == GpuSlots(gpus=(1, 2), vulkan=True)
    named = _slots(VULKAN, vulkan=found, device="vulkan", gpus=(2,))
    assert named == GpuSlots(gpus=(2,), vulkan=True)
    assert not named.on_cuda
    chosen = _slots(VULKAN, vulkan=found, device="vulkan", vulkan_device=1)
    assert chosen.gpus == (1,)
    assert _slots(VULKAN, vulkan=(LLVMPIPE,), device="vulkan").gpus == (0,)
    with pytest.raises(ConfigError, match=r"names GPU 3, but Vulkan sees 3 GPU\(s\)"):
        _slots(VULKAN, vulkan=found, device="vulkan", gpus=(3,))
