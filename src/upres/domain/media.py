"""What upres knows about a video, and how it writes one. Pure types."""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from typing import Literal

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


@dataclass(frozen=True, kw_only=True)
class EncodeSettings:
    """How the output video is written. ``crf`` None picks the codec's default."""

    codec: VideoCodec = "h264"
    crf: int | None = None
    preset: str | None = None
    threads: int = 0


@dataclass(frozen=True, kw_only=True)
class MediaLimits:
    """Inputs over these are refused before any work starts."""

    max_width: int = 7680
    max_height: int = 4320
    max_duration_s: float = 3600.0
