"""What upres knows about a video, and how it writes one. Pure types."""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from typing import Literal

from upres.errors import InvalidRequest

VideoCodec = Literal["h264", "h265", "av1"]
# The codec when none was chosen, and the one it becomes for an HDR or deeper
# than 8-bit source (H.264 output stays 8-bit: see upres.pipeline.output_plan).
DEFAULT_CODEC: VideoCodec = "h264"
DEEP_CODEC: VideoCodec = "h265"


@dataclass(frozen=True, kw_only=True)
class ColorInfo:
    """Colour tags of a stream, as FFmpeg's enum values (AVCOL_*); 2 means unspecified."""

    color_range: int
    primaries: int
    transfer: int
    matrix: int


@dataclass(frozen=True, kw_only=True)
class MasteringDisplay:
    """SMPTE ST 2086 mastering display colour volume (HDR10 static metadata).

    Chromaticities are CIE 1931 (x, y) in red, green, blue order; luminances
    are in cd/m2. Exact fractions, as the bitstream stores them.
    """

    red: tuple[Fraction, Fraction]
    green: tuple[Fraction, Fraction]
    blue: tuple[Fraction, Fraction]
    white_point: tuple[Fraction, Fraction]
    min_luminance: Fraction
    max_luminance: Fraction


@dataclass(frozen=True, kw_only=True)
class ContentLight:
    """CTA-861.3 content light level: MaxCLL and MaxFALL in cd/m2."""

    max_cll: int
    max_fall: int


@dataclass(frozen=True, kw_only=True)
class HdrInfo:
    """The HDR side of a source: static metadata, and whether Dolby Vision rides on it."""

    mastering: MasteringDisplay | None = None
    light: ContentLight | None = None
    dolby_vision: bool = False


@dataclass(frozen=True, kw_only=True)
class VideoInfo:
    """The facts of an input video that the pipeline and billing need."""

    width: int
    height: int
    duration_s: float
    frame_count: int | None
    average_fps: Fraction | None
    codec: str
    pix_fmt: str
    bit_depth: int
    rotation: int
    sample_aspect_ratio: Fraction | None
    color: ColorInfo
    has_audio: bool
    container: str
    hdr: HdrInfo = HdrInfo()


def frame_total(frame_count: int | None, duration_s: float, fps: Fraction | None) -> int | None:
    """The frames a stream holds: the count its container declares, else its
    duration times its frame rate (at least one); None when neither is known."""
    if frame_count:
        return frame_count
    if not fps:
        return None
    return max(1, round(duration_s * fps))


_X26X_PRESETS = (
    "ultrafast",
    "superfast",
    "veryfast",
    "faster",
    "fast",
    "medium",
    "slow",
    "slower",
    "veryslow",
    "placebo",
)
# The speed/quality presets each encoder accepts (SVT-AV1: 0 slowest .. 13 fastest),
# and the largest CRF (lower is better quality).
PRESETS: dict[VideoCodec, tuple[str, ...]] = {
    "h264": _X26X_PRESETS,
    "h265": _X26X_PRESETS,
    "av1": tuple(str(n) for n in range(14)),
}
# Codecs every mainstream browser plays in <video> (Chromium has no HEVC decoder).
BROWSER_PLAYABLE: frozenset[VideoCodec] = frozenset({"h264", "av1"})


def needs_playable_copy(codec: VideoCodec) -> bool:
    """Whether a result written in ``codec`` (the codec it has, not the one a
    setting asked for: an unset codec becomes h264 or h265 per source) gets a
    small H.264 copy for watching in a browser."""
    return codec not in BROWSER_PLAYABLE


MAX_CRF: dict[VideoCodec, int] = {"h264": 51, "h265": 51, "av1": 63}


@dataclass(frozen=True, kw_only=True)
class EncodeSettings:
    """How the output video is written; None picks the codec's default crf or preset.

    ``codec`` None (nobody chose one) is ``DEFAULT_CODEC``, or ``DEEP_CODEC``
    for a source that needs more than 8 bits; both take the same presets and
    crf range, so settings valid for one are valid for the other.
    ``threads`` 0 lets the encoder choose. Raises InvalidRequest when the
    preset or crf is not one the codec accepts, or ``threads`` is negative.
    """

    codec: VideoCodec | None = None
    crf: int | None = None
    preset: str | None = None
    threads: int = 0

    def __post_init__(self) -> None:
        codec = self.codec or DEFAULT_CODEC
        if self.preset is not None and self.preset not in PRESETS[codec]:
            choices = ", ".join(PRESETS[codec])
            raise InvalidRequest(
                f"{codec} has no preset {self.preset!r}; use one of {choices}", param="preset"
            )
        if self.crf is not None and not 0 <= self.crf <= MAX_CRF[codec]:
            raise InvalidRequest(
                f"{codec} crf must be 0..{MAX_CRF[codec]}, got {self.crf}", param="crf"
            )
        if self.threads < 0:
            raise InvalidRequest(f"threads must be >= 0, got {self.threads}", param="threads")


# How much source a chunk of a chunked upscale covers, about (boundaries fall on
# keyframes; a shorter video is one chunk). ``UPRES_CHUNK_SECONDS`` and
# ``upres upscale --chunk-seconds`` default to it; docs/BENCHMARKS.md ("Chunks")
# has the overheads that chose it.
DEFAULT_CHUNK_SECONDS = 60.0


@dataclass(frozen=True, kw_only=True)
class MediaLimits:
    """Inputs over these are refused before any work starts."""

    max_width: int = 7680
    max_height: int = 4320
    max_duration_s: float = 3600.0
