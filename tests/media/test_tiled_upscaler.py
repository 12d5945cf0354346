"""Both network runtimes share one tiled loop (``TiledUpscaler``): given the same
network they return the same frames, and they clamp the network's overshoot the same way."""

from __future__ import annotations

import pytest
import torch
from torch.nn import functional

from upres.domain.tasks import Factor
from upres.models.ncnn_runtime import NcnnOptions
from upres.models.registry import get_model
from upres.models.specs import ModelSpec
from upres.models.tiling import Network
from upres.pipeline.ncnn_upscale import NcnnUpscaler
from upres.pipeline.upscale import ModelUpscaler, TiledUpscaler, resize, to_packed_int

SPEC = get_model("realesr-animevideov3")  # 4x native


def _overshooting(x: torch.Tensor) -> torch.Tensor:
    """A 4x network whose output runs past [0, 1] on both sides (as real ones do a
    little): each input pixel, plus and minus 0.8 in a checkerboard."""
    big = functional.interpolate(x, scale_factor=SPEC.scale, mode="nearest")
    rows = torch.arange(big.shape[-2])[:, None]
    cols = torch.arange(big.shape[-1])[None, :]
    return big + 0.8 * (1 - 2 * ((rows + cols) % 2)).to(big.dtype)


class _Torch:
    """A PyTorch ``NetworkSource`` serving ``_overshooting``."""

    def network(self, spec: ModelSpec, device: torch.device, dtype: torch.dtype) -> torch.nn.Module:
        class _Module(torch.nn.Module):
            def forward(self, x: torch.Tensor) -> torch.Tensor:
                return _overshooting(x)

        return _Module()


class _Ncnn:
    """An ncnn ``NcnnSource`` serving ``_overshooting``."""

    def network(self, spec: ModelSpec, options: NcnnOptions) -> Network:
        return _overshooting


def _frames() -> torch.Tensor:
    torch.manual_seed(3)
    return torch.randint(0, 256, (2, 9, 11, 3), dtype=torch.int32).to(torch.uint8)


def _runtimes(factor: Factor) -> list[TiledUpscaler]:
    return [
        ModelUpscaler(SPEC, factor, device="cpu", models=_Torch()),
        NcnnUpscaler(SPEC, factor, threads=1, networks=_Ncnn()),
    ]


@pytest.mark.parametrize("factor", [Factor.ENHANCE, Factor.X2, Factor.X4])
def test_both_runtimes_clamp_the_overshoot_before_the_downscale(factor: Factor) -> None:
    frames = _frames()
    planar = frames.permute(0, 3, 1, 2).float() / 255
    big = _overshooting(planar)
    height, width = frames.shape[1] * int(factor), frames.shape[2] * int(factor)
    clamped = to_packed_int(
        resize(big.clamp(0.0, 1.0), height=height, width=width, mode="area"), torch.uint8
    )
    outputs = [upscaler.upscale(frames) for upscaler in _runtimes(factor)]
    assert torch.equal(outputs[0], outputs[1])
    assert torch.equal(outputs[0], clamped)
    if factor != SPEC.scale:
        # Averaging the overshoot in before clamping would give other pixels.
        unclamped = to_packed_int(resize(big, height=height, width=width, mode="area"), torch.uint8)
        assert not torch.equal(clamped, unclamped)


def test_both_runtimes_tile_a_large_frame_alike() -> None:
    frames = torch.randint(0, 256, (1, 200, 150, 3), dtype=torch.int32).to(torch.uint8)
    pytorch, ncnn = (
        ModelUpscaler(SPEC, Factor.X2, device="cpu", models=_Torch(), tile_size=128),
        NcnnUpscaler(SPEC, Factor.X2, threads=1, networks=_Ncnn(), tile_size=128),
    )
    tiled = pytorch.upscale(frames)
    assert torch.equal(ncnn.upscale(frames), tiled)
    whole = ModelUpscaler(SPEC, Factor.X2, device="cpu", models=_Torch()).upscale(frames)
    # The blend of overlapping tiles only rounds differently here and there.
    assert (tiled.int() - whole.int()).abs().max() <= 1
