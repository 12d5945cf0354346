"""What upres knows about a video, and how it writes one. Pure types."""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from typing import Literal

from upres.errors import InvalidRequest

VideoCodec = Literal["h264", "h265", "av1"]


@dataclass(frozen=True, kw_only=True)
class ColorInfo:
    """Colour tags of a stream, as FFmpeg's enum values (AVCOL_*); 2 means unspecified."""

    color_range: int
    primaries: int
    transfer: int
    matrix: int


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
MAX_CRF: dict[VideoCodec, int] = {"h264": 51, "h265": 51, "av1": 63}


@dataclass(frozen=True, kw_only=True)
class EncodeSettings:
    """How the output video is written; None picks the codec's default crf or preset.

    ``threads`` 0 lets the encoder choose. Raises InvalidRequest when the
    preset or crf is not one ``codec`` accepts, or ``threads`` is negative.
    """

    codec: VideoCodec = "h264"
    crf: int | None = None
    preset: str | None = None
    threads: int = 0

    def __post_init__(self) -> None:
        if self.preset is not None and self.preset not in PRESETS[self.codec]:
            choices = ", ".join(PRESETS[self.codec])
            raise InvalidRequest(
                f"{self.codec} has no preset {self.preset!r}; use one of {choices}", param="preset"
            )
        if self.crf is not None and not 0 <= self.crf <= MAX_CRF[self.codec]:
            raise InvalidRequest(
                f"{self.codec} crf must be 0..{MAX_CRF[self.codec]}, got {self.crf}", param="crf"
            )
        if self.threads < 0:
            raise InvalidRequest(f"threads must be >= 0, got {self.threads}", param="threads")


@dataclass(frozen=True, kw_only=True)
class MediaLimits:
    """Inputs over these are refused before any work starts."""

    max_width: int = 7680
    max_height: int = 4320
    max_duration_s: float = 3600.0
