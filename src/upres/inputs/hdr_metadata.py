"""HDR side data of a decoded frame: HDR10 static metadata and Dolby Vision markers.

Read at probe time (``upres.inputs.probe``); ``upres.pipeline.hdr`` decides
what the encoder is told.
"""

from __future__ import annotations

import struct
from fractions import Fraction
from typing import cast

from av.sidedata.sidedata import SideDataContainer
from av.sidedata.sidedata import Type as SideDataType
from av.video.frame import VideoFrame

from upres.domain.media import ContentLight, HdrInfo, MasteringDisplay

# AVMasteringDisplayMetadata: 10 AVRationals (r, g, b, white point as x/y pairs;
# min and max luminance) then has_primaries and has_luminance, all int32.
_MASTERING = struct.Struct("<20i2i")
# AVContentLightMetadata: MaxCLL, MaxFALL as unsigned ints.
_LIGHT = struct.Struct("<2I")
_DOLBY_VISION = frozenset({SideDataType.DOVI_RPU_BUFFER, SideDataType.DOVI_METADATA})
# mp4 sample entries of Dolby Vision streams (HEVC, AVC, AV1).
_DOLBY_VISION_TAGS = frozenset({"dvh1", "dvhe", "dva1", "dvav", "dav1"})


def hdr_info(frame: VideoFrame, *, codec_tag: str = "") -> HdrInfo:
    """The HDR10 static metadata of a decoded frame, and whether its stream is Dolby Vision."""
    # PyAV's stub types side_data as a dict of str; it is a SideDataContainer keyed by Type.
    side = cast(SideDataContainer, frame.side_data)

    def raw(kind: SideDataType) -> bytes:
        return bytes(side[kind]) if kind in side else b""

    return HdrInfo(
        mastering=parse_mastering(raw(SideDataType.MASTERING_DISPLAY_METADATA)),
        light=parse_light(raw(SideDataType.CONTENT_LIGHT_LEVEL)),
        dolby_vision=codec_tag in _DOLBY_VISION_TAGS or any(k in side for k in _DOLBY_VISION),
    )


def parse_mastering(raw: bytes) -> MasteringDisplay | None:
    """AVMasteringDisplayMetadata bytes -> MasteringDisplay; None unless both parts are present."""
    if len(raw) != _MASTERING.size:
        return None
    *values, has_primaries, has_luminance = _MASTERING.unpack(raw)
    if not (has_primaries and has_luminance) or 0 in values[1::2]:
        return None
    q = [Fraction(values[i], values[i + 1]) for i in range(0, len(values), 2)]
    return MasteringDisplay(
        red=(q[0], q[1]),
        green=(q[2], q[3]),
        blue=(q[4], q[5]),
        white_point=(q[6], q[7]),
        min_luminance=q[8],
        max_luminance=q[9],
    )


def parse_light(raw: bytes) -> ContentLight | None:
    """AVContentLightMetadata bytes -> ContentLight (None when malformed)."""
    if len(raw) != _LIGHT.size:
        return None
    max_cll, max_fall = _LIGHT.unpack(raw)
    return ContentLight(max_cll=max_cll, max_fall=max_fall)
