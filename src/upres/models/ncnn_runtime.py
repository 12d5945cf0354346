"""The ncnn runtime: a registered model's ncnn files run as they are, on the CPU or a Vulkan device.

The ``ncnn`` wheel from PyPI is built with Vulkan, so one runtime covers every
GPU with a Vulkan driver (AMD, Intel, NVIDIA, Apple through MoltenVK) and the
CPU. A network here has the same shape contract as a PyTorch one in
``upres.models.tiling``: (N, 3, h, w) float32 in [0, 1] -> (N, 3, h*scale,
w*scale), unclamped, on the CPU; ncnn runs one frame at a time. ncnn releases
the GIL while it computes, so the pipeline's decode and encode threads keep
running beside it.
"""

from __future__ import annotations

import ctypes
import functools
import logging
import os
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from enum import IntEnum

import ncnn
import numpy as np
import torch

from upres.errors import ModelError
from upres.models import realcugan
from upres.models.registry import model_files, runtimes
from upres.models.specs import Architecture, ModelSpec, Runtime

log = logging.getLogger(__name__)

# The input and output blob names of the Real-ESRGAN and RealSR exports.
_BLOBS = ("data", "output")
# What ncnn's loader dlopens; absent, ncnn prints three lines on stderr and finds nothing.
_LINUX_VULKAN_LOADER = "libvulkan.so.1"


class VulkanKind(IntEnum):
    """ncnn's ``GpuInfo.type()``: Vulkan's physical device type, renumbered."""

    DISCRETE = 0
    INTEGRATED = 1
    VIRTUAL = 2
    CPU = 3


@dataclass(frozen=True, kw_only=True)
class VulkanDevice:
    """One Vulkan device as ncnn numbers them (``vulkaninfo --summary`` shows the same order)."""

    index: int
    name: str
    kind: VulkanKind
    heap_budget_mb: int

    @property
    def is_gpu(self) -> bool:
        """False for a software rasteriser (llvmpipe, SwiftShader): it runs on the CPU cores."""
        return self.kind is not VulkanKind.CPU


@functools.cache
def vulkan_devices() -> tuple[VulkanDevice, ...]:
    """Every Vulkan device ncnn sees, in its order; none without a Vulkan loader or driver.

    Probed once per process: ncnn creates its Vulkan instance on the first call
    (importing ncnn and running it on the CPU never do).
    """
    if sys.platform.startswith("linux") and not _loadable(_LINUX_VULKAN_LOADER):
        return ()
    with _stderr_to_debug_log():
        count = ncnn.get_gpu_count()
    return tuple(_describe(index) for index in range(count))


@contextmanager
def _stderr_to_debug_log() -> Iterator[None]:
    """Divert file descriptor 2 into the debug log for the block.

    ncnn prints several lines per Vulkan device on stderr when it creates its
    instance; a command's stderr is for its own messages (one line per error).
    Whatever another thread writes to stderr meanwhile goes to the log too.
    """
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as sink:
        os.dup2(sink.fileno(), 2)
        try:
            yield
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            sink.seek(0)
            text = sink.read().decode(errors="replace").strip()
    if text:
        log.debug("ncnn: %s", text)


def _loadable(library: str) -> bool:
    try:
        ctypes.CDLL(library)
    except OSError:
        return False
    return True


def _describe(index: int) -> VulkanDevice:
    info = ncnn.get_gpu_info(index)
    return VulkanDevice(
        index=index,
        name=info.device_name(),
        kind=VulkanKind(info.type()),
        heap_budget_mb=ncnn.get_gpu_device(index).get_heap_budget(),
    )


def vulkan_device(index: int) -> VulkanDevice:
    """The Vulkan device ``index``.

    Raises ModelError when there is no such device (or no Vulkan at all).
    """
    devices = vulkan_devices()
    if not devices:
        raise ModelError(
            "no Vulkan device found: install the Vulkan loader (libvulkan1) and "
            "your GPU's Vulkan driver (mesa-vulkan-drivers for AMD and Intel)"
        )
    if not 0 <= index < len(devices):
        found = ", ".join(f"{d.index}: {d.name}" for d in devices)
        raise ModelError(f"Vulkan device {index} does not exist (Vulkan devices: {found})")
    return devices[index]


@dataclass(frozen=True, kw_only=True)
class NcnnOptions:
    """Where and how a network runs: ``vulkan`` is a device index (None: the CPU,
    ``threads`` threads); ``fp32`` turns off ncnn's fp16/bf16 storage and arithmetic,
    which it otherwise uses where the device has them (every GPU, ARM CPUs)."""

    vulkan: int | None
    threads: int
    fp32: bool = False


class NcnnNetwork:
    """A model loaded into an ``ncnn.Net``; call it like a PyTorch network.

    Raises ModelError when the model has no ncnn form, its files are missing
    or do not load, or the Vulkan device does not exist.
    """

    def __init__(self, spec: ModelSpec, options: NcnnOptions) -> None:
        if Runtime.NCNN not in runtimes(spec):
            raise ModelError(f"model {spec.id} has no ncnn form; it runs on PyTorch only")
        if options.vulkan is not None:
            vulkan_device(options.vulkan)
        self._spec = spec
        self._net = _load(spec, options)
        cugan = spec.architecture is Architecture.REALCUGAN
        self._form = realcugan.ncnn_form(spec.scale) if cugan else None
        self._blobs = (realcugan.INPUT_BLOB, realcugan.OUTPUT_BLOB) if cugan else _BLOBS

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        """(N, 3, h, w) float32 CPU -> (N, 3, h*scale, w*scale) float32 CPU.

        Raises NcnnRunError when ncnn fails (on a GPU: most often out of memory).
        """
        frames = x.detach().to("cpu", torch.float32).numpy()
        # Views of the output Mats' memory where possible: each keeps its Mat alive.
        outputs = [torch.from_numpy(self._frame(frame)) for frame in frames]
        return outputs[0][None] if len(outputs) == 1 else torch.stack(outputs)

    def _frame(self, frame: np.ndarray) -> np.ndarray:
        """One (3, h, w) frame through the network, with the steps its files leave out."""
        if self._form is None:
            return np.asarray(self._run(frame))
        return self._form.after(np.asarray(self._run(self._form.before(frame))), frame)

    def _run(self, frame: np.ndarray) -> ncnn.Mat:
        channels, height, width = frame.shape
        # A Mat of ncnn's own, whose planes start 16-byte aligned as its layers assume
        # (one made around the array would borrow planes of h*w floats: wrong on
        # Vulkan whenever h*w is not a multiple of 4).
        mat_in = ncnn.Mat(width, height, channels)
        np.asarray(mat_in)[...] = frame
        extractor = self._net.create_extractor()
        input_blob, output_blob = self._blobs
        status = extractor.input(input_blob, mat_in)
        if status == 0:
            status, mat_out = extractor.extract(output_blob)
        if status != 0:
            raise NcnnRunError(f"ncnn failed on model {self._spec.id} (status {status})")
        return mat_out


class NcnnRunError(ModelError):
    """ncnn returned an error while running a network (on a GPU usually out of memory)."""


def _load(spec: ModelSpec, options: NcnnOptions) -> ncnn.Net:
    net = ncnn.Net()
    net.opt.num_threads = options.threads
    if options.fp32:
        for flag in ("use_fp16_storage", "use_fp16_packed", "use_fp16_arithmetic"):
            setattr(net.opt, flag, False)
        net.opt.use_bf16_storage = False
    net.opt.use_vulkan_compute = options.vulkan is not None
    if options.vulkan is not None:
        net.set_vulkan_device(options.vulkan)
    with model_files(spec) as (param, weights):
        if net.load_param(str(param)) != 0 or net.load_model(str(weights)) != 0:
            raise ModelError(f"ncnn could not load model {spec.id}")
    return net


class NcnnCache:
    """Loaded ncnn networks keyed by (spec, options), so a worker loads each once; the
    whole spec, because the denoise levels of one network id are different files."""

    def __init__(self) -> None:
        self._loaded: dict[tuple[ModelSpec, NcnnOptions], NcnnNetwork] = {}

    def network(self, spec: ModelSpec, options: NcnnOptions) -> NcnnNetwork:
        """The cached network, loading it on first use. Raises ModelError as NcnnNetwork."""
        key = (spec, options)
        if key not in self._loaded:
            self._loaded[key] = NcnnNetwork(spec, options)
        return self._loaded[key]
