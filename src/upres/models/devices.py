"""Which device runs the networks, and which GPU each worker process takes.

The device setting (``UPRES_DEVICE``, ``--device``) is ``auto``, ``cpu``,
``cuda`` or ``vulkan``. ``auto`` takes CUDA when torch sees it, else the first
Vulkan GPU, else the CPU; a software Vulkan device (llvmpipe, SwiftShader)
is never taken for a GPU by ``auto``, only when ``vulkan`` is asked for
explicitly.

Worker processes take turns on GPU slots (``gpu_slots``): ``UPRES_GPUS``, else
every GPU of the device's kind. ``upres serve``, ``upres worker`` and ``upres
upscale --workers`` all ask here, so the setting means the same to each.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal

import torch

from upres.config import Settings
from upres.errors import ConfigError, ModelError
from upres.models.ncnn_runtime import VulkanDevice, vulkan_device, vulkan_devices

DeviceKind = Literal["cpu", "cuda", "vulkan"]
CUDA_VISIBLE_DEVICES = "CUDA_VISIBLE_DEVICES"


@dataclass(frozen=True, kw_only=True)
class Device:
    """A resolved device: ``vulkan`` is the Vulkan device index when ``kind`` is vulkan."""

    kind: DeviceKind
    vulkan: int | None = None

    @property
    def is_gpu(self) -> bool:
        """True on CUDA and on a hardware Vulkan device."""
        if self.kind == "vulkan" and self.vulkan is not None:
            return vulkan_device(self.vulkan).is_gpu
        return self.kind == "cuda"


def first_vulkan_gpu() -> int | None:
    """The index of the first hardware Vulkan device; None when there is none."""
    return next((d.index for d in vulkan_devices() if d.is_gpu), None)


def resolve_device(name: str, *, vulkan: int | None = None) -> Device:
    """The device ``name`` stands for on this machine; ``vulkan`` picks the Vulkan device
    (default: the first GPU, or for an explicit ``vulkan`` without one, device 0).

    Raises ModelError for an unknown name, CUDA asked for but absent, a Vulkan
    device index that does not exist, or ``vulkan`` with no Vulkan device at all.
    """
    if name == "auto":
        return _auto(vulkan)
    if name == "vulkan":
        index = vulkan if vulkan is not None else first_vulkan_gpu()
        return Device(kind="vulkan", vulkan=vulkan_device(index or 0).index)
    if name == "cuda":
        require_cuda()
        return Device(kind="cuda")
    if name == "cpu":
        return Device(kind="cpu")
    raise ModelError(f"unknown device {name!r}; use auto, cpu, cuda or vulkan")


def _auto(vulkan: int | None) -> Device:
    if torch.cuda.is_available():
        return Device(kind="cuda")
    index = first_vulkan_gpu() if vulkan is None else vulkan
    if index is not None and vulkan_device(index).is_gpu:
        return Device(kind="vulkan", vulkan=index)
    return Device(kind="cpu")


def settings_device(settings: Settings) -> Device:
    """The device the settings name (``device``, ``vulkan_device``), resolved on this
    machine. Raises ModelError as ``resolve_device``."""
    return resolve_device(settings.device, vulkan=settings.vulkan_device)


def torch_device(name: str) -> torch.device:
    """The PyTorch device ``name`` (``auto``, ``cpu`` or ``cuda``) stands for:
    ``auto`` is CUDA when available, else the CPU.

    Raises ModelError when CUDA is requested but not available, or the name is unknown.
    """
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name not in ("cpu", "cuda"):
        raise ModelError(f"unknown device {name!r}; use auto, cpu or cuda")
    if name == "cuda":
        require_cuda()
    return torch.device(name)


def require_cuda() -> None:
    """Raises ModelError when CUDA, asked for by name, is not available."""
    if not torch.cuda.is_available():
        raise ModelError("device cuda was requested but CUDA is not available")


@dataclass(frozen=True, kw_only=True)
class GpuSlots:
    """The GPUs worker processes take turns on: worker slot k takes ``gpu_for(k)``.

    ``vulkan``: the indices are Vulkan devices (a worker is given its own
    ``vulkan_device``), else CUDA devices (a worker sees only its own through
    ``CUDA_VISIBLE_DEVICES``). No ``gpus``: every worker sees what its parent does.
    """

    gpus: tuple[int, ...]
    vulkan: bool

    def gpu_for(self, slot: int) -> int | None:
        return gpu_for_slot(slot, self.gpus)

    @property
    def on_cuda(self) -> bool:
        """True when the workers run on CUDA GPUs."""
        return bool(self.gpus) and not self.vulkan


NO_SLOTS = GpuSlots(gpus=(), vulkan=False)


def gpu_slots(
    settings: Settings,
    device: Device,
    *,
    cuda_count: Callable[[], int],
    vulkan: Callable[[], Sequence[VulkanDevice]],
) -> GpuSlots:
    """The GPU slots of workers that run on ``device`` (``settings_device``), among
    the ``cuda_count()`` CUDA devices or the ``vulkan()`` devices of this machine
    (each asked only when the device is of its kind or may be).

    Raises ConfigError when ``UPRES_GPUS`` names a GPU that is not there.
    """
    if device.kind != "vulkan":
        return GpuSlots(gpus=worker_gpus(settings, cuda_count), vulkan=False)
    if settings.gpus is None and settings.vulkan_device is not None:
        return GpuSlots(gpus=(settings.vulkan_device,), vulkan=True)
    devices = vulkan()
    hardware = any(d.is_gpu for d in devices)
    gpus = worker_gpus(
        settings,
        lambda: len(devices),
        # A software device only when it is all there is.
        usable=lambda index: devices[index].is_gpu or not hardware,
        seen_by="Vulkan",
    )
    return GpuSlots(gpus=gpus, vulkan=True)


def machine_gpu_slots(settings: Settings, device: Device) -> GpuSlots:
    """``gpu_slots`` on this machine's CUDA and Vulkan devices. Raises ConfigError as it."""
    return gpu_slots(settings, device, cuda_count=torch.cuda.device_count, vulkan=vulkan_devices)


def worker_gpus(
    settings: Settings,
    device_count: Callable[[], int],
    *,
    usable: Callable[[int], bool] = lambda _: True,
    seen_by: str = "torch",
) -> tuple[int, ...]:
    """The GPUs worker processes take turns on: ``UPRES_GPUS``, else every one
    of the ``device_count()`` devices that is ``usable``; none when
    ``UPRES_DEVICE=cpu``.

    Raises ConfigError when UPRES_GPUS names a GPU index that is not below
    ``device_count()`` (``seen_by`` names who counted them).
    """
    if settings.device == "cpu":
        return ()
    count = device_count()
    if settings.gpus is None:
        return tuple(gpu for gpu in range(count) if usable(gpu))
    missing = [gpu for gpu in settings.gpus if gpu >= count]
    if missing:
        raise ConfigError(f"UPRES_GPUS names GPU {missing[0]}, but {seen_by} sees {count} GPU(s)")
    return settings.gpus


def gpu_for_slot(slot: int, gpus: Sequence[int]) -> int | None:
    """Worker slot k's GPU: ``gpus[k % len(gpus)]``; None when ``gpus`` is empty."""
    return gpus[slot % len(gpus)] if gpus else None


def visible_devices(gpu: int, inherited: str | None) -> str:
    """The CUDA_VISIBLE_DEVICES value that shows only ``gpu``, an index among
    the devices that ``inherited`` (the variable as this process got it, None
    when unset) already shows, as torch numbers them."""
    if inherited is None:
        return str(gpu)
    return inherited.split(",")[gpu].strip()


def on_vulkan_device(settings: Settings, index: int) -> Settings:
    """``settings`` for a worker that runs on Vulkan device ``index``."""
    return settings.model_copy(update={"device": "vulkan", "vulkan_device": index})
