"""How YUV pixels of one video map to RGB and back: the matrix and range both directions use.

PyAV converts with BT.601 and tags 'unspecified' unless told otherwise, which
shifts colours (luma ~12 levels) on BT.709 video. Decode and encode both build
their conversion from the same ``YuvConversion``, so a 1x round trip is
identity up to rounding, and the output carries explicit tags.
"""

from __future__ import annotations

from dataclasses import dataclass

from av.video.reformatter import Interpolation

from upres.domain.media import ColorInfo

# AVCOL_SPC_* (stream tags) -> SWS_CS_* (swscale coefficient sets, what PyAV's reformat takes).
_SWS_FOR_MATRIX = {1: 1, 4: 4, 5: 5, 6: 5, 7: 7, 9: 9, 10: 9}
SWS_BT709 = 1
SWS_BT601 = 5
AVCOL_SPC_BT709 = 1
AVCOL_SPC_SMPTE170M = 6
RANGE_UNSPECIFIED = 0
RANGE_LIMITED = 1
RANGE_FULL = 2
HD_HEIGHT = 720
# swscale's default YUV->RGB rounds with a bias of about -1.1 luma levels per
# round trip; accurate rounding with full chroma interpolation brings it to ~0.01.
# Full chroma interpolation corrupts >8-bit YUV->RGB48 (FFmpeg 8), so deep
# sources use accurate rounding alone (round trip error ~0.1 8-bit levels).
TO_RGB_FLAGS = Interpolation.BILINEAR | Interpolation.ACCURATE_RND | Interpolation.FULL_CHR_H_INT
TO_RGB_DEEP_FLAGS = Interpolation.BILINEAR | Interpolation.ACCURATE_RND
TO_YUV_FLAGS = Interpolation.BILINEAR | Interpolation.ACCURATE_RND


@dataclass(frozen=True, kw_only=True)
class YuvConversion:
    """Coefficients and range for YUV<->RGB, plus the tags the output stream gets.

    ``sws_matrix`` is a SWS_CS_* value for ``VideoFrame.reformat``;
    ``yuv_range`` is the AVColorRange of the YUV side (RGB is always full range).
    """

    sws_matrix: int
    yuv_range: int
    tags: ColorInfo


def conversion_for(color: ColorInfo, *, pix_fmt: str, height: int) -> YuvConversion:
    """The conversion that matches a source's tags.

    Untagged sources get what players assume (BT.709 from 720 lines up, BT.601
    below; full range for ``yuvj*``, limited otherwise); the guess is written
    to the output tags so a player shows the upscaled (now larger) output the
    same way it showed the input.
    """
    matrix = color.matrix if color.matrix in _SWS_FOR_MATRIX else _guess_matrix(height)
    yuv_range = color.color_range
    if yuv_range not in (RANGE_LIMITED, RANGE_FULL):
        yuv_range = RANGE_FULL if pix_fmt.startswith("yuvj") else RANGE_LIMITED
    tags = ColorInfo(
        color_range=yuv_range,
        primaries=color.primaries,
        transfer=color.transfer,
        matrix=matrix,
    )
    return YuvConversion(sws_matrix=_SWS_FOR_MATRIX[matrix], yuv_range=yuv_range, tags=tags)


def _guess_matrix(height: int) -> int:
    return AVCOL_SPC_BT709 if height >= HD_HEIGHT else AVCOL_SPC_SMPTE170M
