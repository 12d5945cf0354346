"""What one upscale runs with: the command's options over the ``UPRES_*`` settings.

``Options`` are the choices a folder's ``upres.toml`` may also make (None: not
given); ``RunOptions`` are how this machine runs (device, workers), which only
the command line and the environment set. ``choose`` is the one place where
they meet the settings: option > upres.toml (merged in before) > UPRES_* > default.
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from typing import get_args

from upres.config import Settings
from upres.domain.media import EncodeSettings, VideoCodec
from upres.domain.tasks import Factor
from upres.errors import InvalidRequest

DEFAULT_FACTOR = Factor.X2


@dataclass(frozen=True, kw_only=True)
class Options:
    """The per-video choices as given (None: not given)."""

    factor: int | None = None
    model: str | None = None
    codec: VideoCodec | None = None
    crf: int | None = None
    preset: str | None = None
    temporal: bool | None = None
    double_rate: bool | None = None
    denoise: int | None = None

    def over(self, below: Options) -> Options:
        """These options, each one not given here taken from ``below``."""
        given = {f.name: getattr(self, f.name) for f in fields(self)}
        return replace(below, **{name: value for name, value in given.items() if value is not None})


@dataclass(frozen=True, kw_only=True)
class RunOptions:
    """How this machine runs the videos (None: from the settings)."""

    device: str | None = None
    workers: int | None = None
    chunk_seconds: float | None = None


@dataclass(frozen=True, kw_only=True)
class Choices:
    """What the command's options and the settings chose for this run."""

    factor: Factor
    model: str | None
    denoise: int | None
    device: str
    encode: EncodeSettings
    double_rate: bool
    temporal: bool
    workers: int | None  # None: one per GPU slot
    chunk_seconds: float


def video_codec(name: str) -> VideoCodec:
    """``name`` as a codec. Raises InvalidRequest for one upres does not write."""
    for codec in get_args(VideoCodec):
        if name == codec:
            return codec  # type: ignore[no-any-return]
    names = ", ".join(get_args(VideoCodec))
    raise InvalidRequest(f"unknown codec {name!r}; use one of {names}", param="codec")


def choose(options: Options, run: RunOptions, settings: Settings) -> Choices:
    """The options over the settings over the defaults.

    Raises InvalidRequest when the preset or crf does not suit the codec.
    """
    device = run.device or settings.device
    return Choices(
        factor=Factor(options.factor) if options.factor is not None else DEFAULT_FACTOR,
        model=options.model or settings.model,
        denoise=options.denoise,
        device=device,
        encode=_encode_settings(settings, options),
        double_rate=(
            settings.deinterlace_double_rate if options.double_rate is None else options.double_rate
        ),
        temporal=settings.temporal if options.temporal is None else options.temporal,
        workers=run.workers,
        chunk_seconds=settings.chunk_seconds if run.chunk_seconds is None else run.chunk_seconds,
    )


def _encode_settings(settings: Settings, options: Options) -> EncodeSettings:
    """Raises InvalidRequest when the preset or crf does not suit the codec."""
    base = settings.encode_settings
    return replace(
        base,
        codec=options.codec if options.codec is not None else base.codec,
        crf=options.crf if options.crf is not None else base.crf,
        preset=options.preset if options.preset is not None else base.preset,
    )
