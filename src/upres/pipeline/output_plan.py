"""What the output will be, decided before the first frame: size, pixel format, codec,
encoder settings (``plan_output``, ``encoder_options``), and the preset that keeps
up with a fast source (``keeping_up``). ``upres.pipeline.encode`` writes it.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from fractions import Fraction

import av

from upres.domain.media import EncodeSettings, HdrInfo, VideoCodec, VideoInfo
from upres.errors import EncodeError
from upres.pipeline.colorimetry import YuvConversion
from upres.pipeline.hdr import (
    choose_codec,
    dolby_vision_note,
    needs_deep_output,
    svtav1_params,
    x265_params,
)

_ENCODERS: dict[VideoCodec, str] = {"h264": "libx264", "h265": "libx265", "av1": "libsvtav1"}
_DEFAULT_CRF: dict[VideoCodec, int] = {"h264": 18, "h265": 20, "av1": 28}
_DEFAULT_PRESET: dict[VideoCodec, str] = {"h264": "medium", "h265": "fast", "av1": "8"}
_FAST_SOURCE_PRESET = "veryfast"
_TEN_BIT = "yuv420p10le"
# H.264 can carry 10 bits (High 10), but browsers and phones rarely play it,
# so H.264 output stays 8-bit yuv420p; H.265 and AV1 keep a deep source deep.
_DEEP_CODECS: frozenset[VideoCodec] = frozenset({"h265", "av1"})
# x264 and x265 code 4:2:0 in whole chroma samples, so an odd width or height
# cannot be 4:2:0 there; AV1 can. Such frames keep every chroma sample instead
# (4:4:4): the output is exactly the input's size, and needs no crop metadata
# that most players ignore (README, "What the output keeps").
_FULL_CHROMA = {"yuv420p": "yuv444p", _TEN_BIT: "yuv444p10le"}
_ODD_420_CODECS: frozenset[VideoCodec] = frozenset({"av1"})


def keeping_up(settings: EncodeSettings, *, fast_source: bool) -> EncodeSettings:
    """``settings``, with x264's preset lowered to ``veryfast`` for a ``fast_source``.

    A fast model on a GPU makes 4K frames faster than x264 medium can encode
    them on the host's CPU (docs/BENCHMARKS.md, "The encoder at 4K"):
    veryfast needs about half the CPU per frame at the same CRF. A preset the
    user chose is kept.
    """
    if not fast_source or settings.preset is not None or settings.codec not in (None, "h264"):
        return settings
    return replace(settings, preset=_FAST_SOURCE_PRESET)


@dataclass(frozen=True, kw_only=True)
class OutputPlan:
    """Everything about the output video stream, decided before the first frame.

    ``rate`` is 2 when each input frame becomes two (field-rate
    deinterlacing): the time base is halved and the frame rate doubled.
    ``notes`` say what upres chose for the user (a codec switch, Dolby Vision dropped).
    """

    width: int
    height: int
    pix_fmt: str
    conversion: YuvConversion
    rotation: int
    sample_aspect_ratio: Fraction | None
    frame_rate: Fraction | None
    codec: VideoCodec
    settings: EncodeSettings
    hdr: HdrInfo
    rate: int
    notes: tuple[str, ...]

    @property
    def encoder(self) -> str:
        return _ENCODERS[self.codec]


def plan_output(
    info: VideoInfo,
    *,
    factor: int,
    conversion: YuvConversion,
    settings: EncodeSettings,
    rate: int = 1,
) -> OutputPlan:
    """The output for ``info`` upscaled ``factor`` times, ``rate`` frames per input frame.

    The size is exactly ``factor`` times the input's (odd sizes in 4:4:4 with
    H.264 and H.265, see ``_FULL_CHROMA``). The codec is ``choose_codec``'s; an
    HDR or deeper than 8-bit source is written 10-bit with H.265 and AV1 (H.264
    output is 8-bit), with its HDR10 metadata.
    Raises EncodeError when the encoder is missing.
    """
    codec, codec_note = choose_codec(settings, info)
    try:
        encoder = av.codec.Codec(_ENCODERS[codec], "w")
    except av.codec.codec.UnknownCodecError as exc:
        raise EncodeError(f"The {_ENCODERS[codec]} encoder is not available.") from exc
    formats = encoder.video_formats or []
    deep = (
        needs_deep_output(info)
        and codec in _DEEP_CODECS
        and any(f.name == _TEN_BIT for f in formats)
    )
    notes = (codec_note, dolby_vision_note(info))
    width, height = info.width * factor, info.height * factor
    return OutputPlan(
        width=width,
        height=height,
        pix_fmt=chroma_for_size(_TEN_BIT if deep else "yuv420p", width, height, codec),
        conversion=conversion,
        rotation=info.rotation,
        sample_aspect_ratio=info.sample_aspect_ratio,
        frame_rate=info.average_fps * rate if info.average_fps else None,
        codec=codec,
        settings=settings,
        hdr=info.hdr,
        rate=rate,
        notes=tuple(n for n in notes if n is not None),
    )


def chroma_for_size(pix_fmt: str, width: int, height: int, codec: VideoCodec) -> str:
    """``pix_fmt``, or its 4:4:4 twin when ``codec`` cannot code this odd size in 4:2:0."""
    odd = width % 2 or height % 2
    if not odd or codec in _ODD_420_CODECS:
        return pix_fmt
    return _FULL_CHROMA.get(pix_fmt, pix_fmt)


def encoder_options(plan: OutputPlan, *, vfr: bool, part: bool) -> dict[str, str]:
    """The encoder's options for ``plan``: its CRF and preset (the codec's defaults
    unless set), x265's and SVT-AV1's parameters (HDR10 metadata on a deep
    output). ``vfr``: no B-frames in x265; a ``part`` repeats its headers."""
    codec, settings = plan.codec, plan.settings
    crf = settings.crf if settings.crf is not None else _DEFAULT_CRF[codec]
    options = {"crf": str(crf), "preset": settings.preset or _DEFAULT_PRESET[codec]}
    deep = plan.pix_fmt == _TEN_BIT
    if codec == "h265":
        # Parts repeat VPS/SPS/PPS before each keyframe: a joined stream decodes from any
        # part's start.
        params = [
            "log-level=error",
            *(["bframes=0"] if vfr else []),
            *(["repeat-headers=1"] if part else []),
        ]
        options["x265-params"] = ":".join(params + (x265_params(plan.hdr) if deep else []))
    if codec == "av1" and deep and svtav1_params(plan.hdr):
        options["svtav1-params"] = ":".join(svtav1_params(plan.hdr))
    return options
