"""How much arithmetic the models need, and how much the device can do.

``rrdbnet_macs`` and ``compact_macs`` count multiply-accumulates per input
pixel from the published architectures; ``counted_macs`` counts them on the
loaded network with forward hooks, which checks the formulas. ``conv_ceiling``
times one large 3x3 convolution, the best case for the convolution kernels
both networks consist of, so model FLOP/s divided by it says how much of the
device the engine uses.
"""

from __future__ import annotations

import itertools
import time
from dataclasses import dataclass

import torch
from torch import nn

from upres.models.loader import ModelCache
from upres.models.ncnn import Architecture
from upres.models.specs import ModelSpec

_KERNEL = 9  # every convolution of the ESRGAN networks is 3x3; most of Real-CUGAN's


def rrdbnet_macs(*, blocks: int = 23, feats: int = 64, growth: int = 32, scale: int = 4) -> int:
    """Multiply-accumulates per input pixel of ESRGAN's RRDBNet (scale 4: no pixel unshuffle).

    Each RRDB has 3 residual dense blocks of 5 convs: conv k (k = 1..4) maps
    feats + (k-1)*growth channels to growth, conv 5 maps feats + 4*growth to
    feats. Around the trunk: conv_first (3->feats), conv_body (feats->feats);
    then two nearest-neighbour 2x upsamplings each followed by a feats->feats
    conv (at 2x and 4x the input area), conv_hr (feats->feats) and conv_last
    (feats->3) at the output size.
    """
    dense = sum((feats + k * growth) * growth for k in range(4)) + (feats + 4 * growth) * feats
    trunk = blocks * 3 * dense + feats * feats + 3 * feats
    up1, up2 = 4, scale * scale
    head = feats * feats * (up1 + up2) + feats * feats * up2 + feats * 3 * up2
    return _KERNEL * (trunk + head)


def compact_macs(*, convs: int = 16, feats: int = 64, scale: int = 4) -> int:
    """Multiply-accumulates per input pixel of SRVGGNetCompact: all convs at the input size.

    conv_first (3->feats), ``convs`` body convs (feats->feats), a last conv to
    3*scale^2 channels, then pixel shuffle (no arithmetic).
    """
    return _KERNEL * (3 * feats + convs * feats * feats + feats * 3 * scale * scale)


def realcugan_macs(*, scale: int) -> int:
    """Multiply-accumulates per input pixel of Real-CUGAN, without its reflected border
    (on a ``side``-pixel frame the border adds about ``(1 + 2 * 18 / side)²``).

    The first U-Net works at the input size: two 3x3 convs (3->32->64), a 2x2
    stride-2 conv to a quarter of the pixels, two 3x3 convs there (64->128->64)
    and a 2x2 transposed conv back, a 3x3 conv (64->64), then a transposed conv
    (4x4 stride 2; at 3x 5x5 stride 3) to ``ends`` channels at ``up``² the pixels:
    3 channels at the output size (2x, 3x) or 64 at 2x (4x). The second U-Net
    works there: 3x3 convs ends->32->64, down to a quarter (64->64->128), down
    to a sixteenth (128->256->128), up to a quarter (128->64->64), up, a 3x3
    conv (64->64) and a 3x3 conv to ``ends``; at 4x a last 3x3 conv (64->12)
    before the pixel shuffle. The squeeze-and-excitation layers work on one
    pooled pixel per channel: nothing per pixel.
    """
    ends, up = (64, 2) if scale == 4 else (3, scale)
    kernel = 25 if scale == 3 else 16

    def down(cin: int, cout: int) -> int:  # a 2x2 stride-2 conv, per input pixel
        return cin * cout

    unet1 = _KERNEL * (3 * 32 + 32 * 64) + down(64, 64)
    unet1 += _KERNEL * (64 * 128 + 128 * 64) // 4 + down(64, 64) + _KERNEL * 64 * 64
    unet1 += kernel * 64 * ends
    unet2 = _KERNEL * (ends * 32 + 32 * 64) + down(64, 64)
    unet2 += _KERNEL * (64 * 64 + 64 * 128) // 4 + down(128, 128) // 4
    unet2 += _KERNEL * (128 * 256 + 256 * 128) // 16 + down(128, 128) // 4
    unet2 += _KERNEL * (128 * 64 + 64 * 64) // 4 + down(64, 64)
    unet2 += _KERNEL * 64 * 64 + _KERNEL * 64 * ends
    final = _KERNEL * 64 * 12 if scale == 4 else 0
    return unet1 + up * up * (unet2 + final)


def spynet_macs() -> int:
    """Multiply-accumulates per input pixel of one SpyNet flow: six levels of five 7x7
    convs (8->32->64->32->16->2), each level a quarter of the next one's pixels."""
    widths = (8, 32, 64, 32, 16, 2)
    level = 49 * sum(a * b for a, b in itertools.pairwise(widths))
    return round(level * sum(4.0**-k for k in range(6)))


def basicvsr_macs(*, feats: int = 64, blocks: int = 30, scale: int = 4) -> int:
    """Multiply-accumulates per input pixel and frame of BasicVSR: two flows (one each
    way), two trunks (a (3+feats)->feats conv and ``blocks`` residual blocks of two
    feats->feats convs), the 1x1 fusion, upconv1 (feats->4 feats) at the input size,
    upconv2 at twice it, conv_hr (feats->feats) and conv_last (feats->3) at the output size.
    """
    trunk = (3 + feats) * feats + blocks * 2 * feats * feats
    up = feats * 4 * feats * (1 + 4) + (feats * feats + feats * 3) * scale * scale
    return 2 * spynet_macs() + _KERNEL * (2 * trunk + up) + 2 * feats * feats


def formula_macs(spec: ModelSpec) -> int:
    """Per input pixel, from the formulas (x4plus: 23 blocks; x4plus-anime: 6 blocks)."""
    if spec.architecture is Architecture.BASICVSR:
        return basicvsr_macs(scale=spec.scale)
    if spec.architecture is Architecture.RRDBNET:
        return rrdbnet_macs(blocks=6 if "anime" in spec.id else 23, scale=spec.scale)
    if spec.architecture is Architecture.REALCUGAN:
        return realcugan_macs(scale=spec.scale)
    return compact_macs(scale=spec.scale)


def counted_macs(spec: ModelSpec, models: ModelCache, *, side: int = 16) -> int:
    """Per input pixel, counted on the loaded network (forward hooks on every conv)."""
    network = models.network(spec, torch.device("cpu"), torch.float32)
    total = 0

    def hook(module: nn.Module, inputs: tuple[torch.Tensor, ...], output: torch.Tensor) -> None:
        nonlocal total
        if isinstance(module, nn.ConvTranspose2d):
            # Each input value is multiplied into a kernel of every output channel.
            taps = module.out_channels * module.kernel_size[0] * module.kernel_size[1]
            total += inputs[0].numel() * taps
            return
        assert isinstance(module, nn.Conv2d)
        per_output = module.in_channels // module.groups * module.kernel_size[0]
        total += output.numel() * per_output * module.kernel_size[1]

    convs = (nn.Conv2d, nn.ConvTranspose2d)
    handles = [m.register_forward_hook(hook) for m in network.modules() if isinstance(m, convs)]
    try:
        with torch.inference_mode():
            network(torch.rand(1, 3, side, side))
    finally:
        for handle in handles:
            handle.remove()
    return total // (side * side)


@dataclass(frozen=True, kw_only=True)
class Ceiling:
    """Measured throughput of one large 3x3 conv (64->64 channels) on ``device`` in ``dtype``."""

    device: str
    dtype: str
    shape: tuple[int, ...]
    tflops: float


def conv_ceiling(device: torch.device, dtype: torch.dtype, *, seconds: float = 2.0) -> Ceiling:
    """Time a 64->64 3x3 conv (channels_last, cuDNN autotuned on CUDA) for about ``seconds``."""
    on_gpu = device.type == "cuda"
    shape = (16, 64, 512, 512) if on_gpu else (1, 64, 192, 192)
    torch.backends.cudnn.benchmark = True
    conv = nn.Conv2d(64, 64, 3, padding=1).to(device=device, dtype=dtype)
    x = torch.rand(shape, device=device, dtype=dtype)
    if on_gpu:
        conv, x = (
            conv.to(memory_format=torch.channels_last),
            x.to(memory_format=torch.channels_last),
        )
    with torch.inference_mode():
        conv(x)
        calls, started = 0, time.perf_counter()
        while time.perf_counter() - started < seconds:
            conv(x)
            calls += 1
            if on_gpu:
                torch.cuda.synchronize(device)
        elapsed = time.perf_counter() - started
    del conv, x
    if on_gpu:
        torch.cuda.empty_cache()  # the cases run in other processes and need the memory
    flops = 2 * _KERNEL * 64 * 64 * shape[0] * shape[2] * shape[3] * calls
    return Ceiling(
        device=str(device),
        dtype=str(dtype).removeprefix("torch."),
        shape=shape,
        tflops=flops / elapsed / 1e12,
    )
