"""Whether two consecutive frames belong to different shots, from the frames alone.

The test compares the luma histograms (32 bins) of the two frames: a total
variation (half the L1 distance: 0 the same, 1 disjoint) above
``HISTOGRAM_CUT`` is a cut. Motion within a shot moves the picture but
keeps its tones; another shot brings other tones. It costs one histogram per
frame, nothing next to the interpolator.

On the bench's clips (docs/QUALITY.md, "Scene cuts") pairs within a shot,
pans of up to 24 pixels between the frames compared included, stay below
0.16 and every cut is above 0.55, cuts between two parts of the same photo
(the same light) included; the threshold sits between. A cut between two
shots of the same tones (below the threshold) is missed: it is then
interpolated like motion. A shot-wide change of light (a flash, a fade to
black) is taken for a cut: the nearer frame is repeated, which a fade shows
as a step.
"""

from __future__ import annotations

import torch

HISTOGRAM_CUT = 0.3
_BINS = 32
# ITU-R BT.601 luma weights: the test needs brightness, not an exact matrix.
_LUMA = (0.299, 0.587, 0.114)


def is_cut(first: torch.Tensor, second: torch.Tensor) -> bool:
    """Whether (H, W, 3) frames ``first`` and ``second`` (any integer depth) are two shots."""
    return histogram_distance(_luma(first), _luma(second)) > HISTOGRAM_CUT


def _luma(frame: torch.Tensor) -> torch.Tensor:
    """(H, W) luma in [0, 1] of an (H, W, 3) uint8 or uint16 frame."""
    scale = 65535.0 if frame.dtype == torch.uint16 else 255.0
    weights = torch.tensor(_LUMA, dtype=torch.float32)
    return (frame.to(torch.float32) @ weights) / scale


def histogram_distance(a: torch.Tensor, b: torch.Tensor) -> float:
    """Total variation between the histograms of luma images ``a`` and ``b`` (0..1)."""
    ha = torch.histc(a, bins=_BINS, min=0.0, max=1.0)
    hb = torch.histc(b, bins=_BINS, min=0.0, max=1.0)
    return float((ha / ha.sum() - hb / hb.sum()).abs().sum() / 2)
