"""HDR and high bit depth: what a source carries, which codec can keep it, how to tell the encoder.

PQ and HLG pictures are upscaled in their coded (non-linear) values, as the
networks were trained on gamma-coded images; the transfer, primaries and
matrix tags are copied, and the static HDR10 metadata (mastering display and
content light level, read from the first decoded frame's side data) is
handed to x265 or SVT-AV1 as encoder parameters. Dolby Vision's dynamic
metadata (the RPU) describes the source's pictures and cannot follow an
upscale: the output keeps the HDR10 base layer, and says so.
"""

from __future__ import annotations

from fractions import Fraction

from upres.domain.media import (
    DEEP_CODEC,
    DEFAULT_CODEC,
    EncodeSettings,
    HdrInfo,
    MasteringDisplay,
    VideoCodec,
    VideoInfo,
)

# AVCOL_TRC_* of the HDR transfers.
TRC_PQ = 16
TRC_HLG = 18
_TRANSFER_NAMES = {TRC_PQ: "PQ", TRC_HLG: "HLG"}
# Units of the x265 master-display string: chromaticity 1/50000, luminance 1/10000 cd/m2.
_X265_CHROMA = 50_000
_X265_LUMA = 10_000


def is_hdr(info: VideoInfo) -> bool:
    """True for a PQ or HLG source."""
    return info.color.transfer in _TRANSFER_NAMES


def needs_deep_output(info: VideoInfo) -> bool:
    """True when 8-bit output would lose what the source has: HDR, or more than 8 bits."""
    return is_hdr(info) or info.bit_depth > 8


def choose_codec(settings: EncodeSettings, info: VideoInfo) -> tuple[VideoCodec, str | None]:
    """The output codec for ``info``, and a note when the choice matters to the user.

    A codec nobody chose is ``DEFAULT_CODEC``, or ``DEEP_CODEC`` (10-bit) for
    a source that needs more than 8 bits; a chosen codec is kept (H.264 with a
    warning that it writes 8 bits).
    """
    deep = needs_deep_output(info)
    if settings.codec is not None:
        if deep and settings.codec == "h264":
            return settings.codec, f"the source is {describe(info)}; h264 output is 8-bit"
        return settings.codec, None
    if not deep:
        return DEFAULT_CODEC, None
    return DEEP_CODEC, (
        f"the source is {describe(info)}: writing {DEEP_CODEC} 10-bit instead of {DEFAULT_CODEC}"
    )


def describe(info: VideoInfo) -> str:
    """``HDR10 (PQ) 10-bit``, ``HLG 10-bit``, ``10-bit``: what makes a source deep."""
    transfer = _TRANSFER_NAMES.get(info.color.transfer)
    if transfer == "PQ" and info.hdr.mastering is not None:
        transfer = "HDR10 (PQ)"
    depth = f"{info.bit_depth}-bit"
    return f"{transfer} {depth}" if transfer else depth


def dolby_vision_note(info: VideoInfo) -> str | None:
    """The note for a Dolby Vision source (None for others)."""
    if not info.hdr.dolby_vision:
        return None
    return "Dolby Vision metadata cannot follow an upscale: the output keeps the HDR10 base layer"


def x265_params(hdr: HdrInfo) -> list[str]:
    """x265-params entries that write ``hdr``'s static metadata (SEI; headers at every keyframe)."""
    params = []
    if hdr.mastering is not None:
        params.append(f"master-display={_x265_mastering(hdr.mastering)}")
    if hdr.light is not None:
        params.append(f"max-cll={hdr.light.max_cll},{hdr.light.max_fall}")
    if params:
        params += ["hdr10=1", "repeat-headers=1"]
    return params


def svtav1_params(hdr: HdrInfo) -> list[str]:
    """svtav1-params entries that write ``hdr``'s static metadata (metadata OBUs)."""
    params = []
    if hdr.mastering is not None:
        params.append(f"mastering-display={_svt_mastering(hdr.mastering)}")
    if hdr.light is not None:
        params.append(f"content-light={hdr.light.max_cll},{hdr.light.max_fall}")
    if params:
        params.insert(0, "enable-hdr=1")
    return params


def _x265_mastering(m: MasteringDisplay) -> str:
    def xy(pair: tuple[Fraction, Fraction]) -> str:
        return f"({round(pair[0] * _X265_CHROMA)},{round(pair[1] * _X265_CHROMA)})"

    luma = f"L({round(m.max_luminance * _X265_LUMA)},{round(m.min_luminance * _X265_LUMA)})"
    return f"G{xy(m.green)}B{xy(m.blue)}R{xy(m.red)}WP{xy(m.white_point)}{luma}"


def _svt_mastering(m: MasteringDisplay) -> str:
    def xy(pair: tuple[Fraction, Fraction]) -> str:
        return f"({float(pair[0]):.5f},{float(pair[1]):.5f})"

    luma = f"L({float(m.max_luminance):.4f},{float(m.min_luminance):.4f})"
    return f"G{xy(m.green)}B{xy(m.blue)}R{xy(m.red)}WP{xy(m.white_point)}{luma}"
