"""Pad / tile / blend / crop: tiled results equal untiled ones, with no seams."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from upres.errors import ModelError
from upres.models.loader import ModelCache
from upres.models.registry import get_model
from upres.models.tiling import (
    MAX_SAMPLE_ELEMENTS,
    TileGrid,
    TileSpec,
    crop,
    pad_to,
    plan_axis,
    ramp,
    run_tiled,
    tile_side,
)


def _conv_net(scale: int) -> nn.Module:
    """Three 3x3 convolutions: receptive field radius 3 input pixels."""
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1),
        nn.LeakyReLU(0.2),
        nn.Conv2d(8, 8, 3, padding=1),
        nn.LeakyReLU(0.2),
        nn.Conv2d(8, 3 * scale * scale, 3, padding=1),
        nn.PixelShuffle(scale),
    ).eval()


@pytest.mark.parametrize("scale", [1, 2, 4])
@pytest.mark.parametrize(("height", "width"), [(37, 53), (64, 64), (20, 90)])
def test_tiled_equals_untiled(scale: int, height: int, width: int) -> None:
    net = _conv_net(scale)
    x = torch.rand(2, 3, height, width)
    with torch.inference_mode():
        whole = net(x)
        tiled = run_tiled(x, net, scale=scale, tiles=TileSpec(size=16, overlap=8, margin=3))
    assert tiled.shape == whole.shape
    assert float((tiled - whole).abs().max()) < 1e-5


def _worst_column_jump(tiled: torch.Tensor, whole: torch.Tensor) -> float:
    """The largest step of the tiling error between neighbouring columns: a seam is a step."""
    error = tiled - whole
    return float((error[..., 1:] - error[..., :-1]).abs().max())


def test_ramp_blending_hides_seams_a_hard_cut_shows() -> None:
    """Receptive field radius 12 > margin: tiles differ; the ramp makes the change gradual."""
    torch.manual_seed(0)
    net = nn.Sequential(*[nn.Conv2d(3, 3, 3, padding=1) for _ in range(12)]).eval()
    x = torch.rand(1, 3, 40, 40)
    with torch.inference_mode():
        whole = net(x)
        blended = run_tiled(x, net, scale=1, tiles=TileSpec(size=20, overlap=8, margin=2))
        hard = run_tiled(x, net, scale=1, tiles=TileSpec(size=20, overlap=1, margin=0))
    assert _worst_column_jump(blended, whole) * 10 < _worst_column_jump(hard, whole)
    assert float((blended - whole).abs().max()) < 0.01


def test_weights_cover_every_pixel_and_are_zero_at_inner_edges() -> None:
    grid = plan_axis(100, tile=40, overlap=16)
    total = torch.zeros(100)
    for start in grid.starts:
        weight = ramp(grid, start, overlap=16, margin=4)
        if start > 0:
            assert float(weight[:4].max()) == 0.0
        if start + grid.size < grid.length:
            assert float(weight[-4:].max()) == 0.0
        total[start : start + grid.size] += weight
    assert float(total.min()) > 0.0


def test_plan_axis_covers_the_length_with_the_requested_overlap() -> None:
    grid = plan_axis(100, tile=40, overlap=16)
    assert grid.starts[0] == 0
    assert grid.starts[-1] + grid.size == 100
    gaps = [b - a for a, b in zip(grid.starts, grid.starts[1:], strict=False)]
    assert all(grid.size - gap >= 16 for gap in gaps)


def test_plan_axis_single_tile_when_it_fits() -> None:
    assert plan_axis(30, tile=64, overlap=16) == TileGrid(length=30, size=30, starts=(0,))


def test_plan_axis_respects_multiple_of() -> None:
    grid = plan_axis(96, tile=32, overlap=10, multiple_of=8)
    assert all(start % 8 == 0 for start in grid.starts)


def test_overlap_as_large_as_the_tile_is_a_model_error() -> None:
    with pytest.raises(ModelError, match="too small"):
        plan_axis(100, tile=16, overlap=16)


@pytest.mark.parametrize(
    ("height", "width", "multiple_of", "min_size", "expected"),
    [
        (17, 33, 1, 1, (17, 33)),
        (17, 33, 4, 1, (20, 36)),
        (3, 5, 1, 8, (8, 8)),
        (1, 1, 2, 2, (2, 2)),
    ],
)
def test_pad_then_crop_round_trip(
    height: int, width: int, multiple_of: int, min_size: int, expected: tuple[int, int]
) -> None:
    x = torch.rand(1, 3, height, width)
    padded, padding = pad_to(x, multiple_of=multiple_of, min_size=min_size)
    assert tuple(padded.shape[-2:]) == expected
    assert torch.equal(padded[..., :height, :width], x)
    upscaled = padded.repeat_interleave(2, dim=-2).repeat_interleave(2, dim=-1)
    assert crop(upscaled, padding, 2).shape[-2:] == (height * 2, width * 2)


def test_plan_axis_spreads_tiles_evenly() -> None:
    rows = plan_axis(360, tile=256, overlap=32)
    cols = plan_axis(640, tile=256, overlap=32)
    computed = len(rows.starts) * rows.size * len(cols.starts) * cols.size
    assert computed <= 1.25 * 360 * 640  # fixed 256 px tiles computed 1.71x the frame


def test_tile_side_is_bounded_by_the_memory_budget() -> None:
    # 1 GiB at 16 KiB per pixel: 65536 pixels, a 256 px square.
    assert (
        tile_side(
            budget_bytes=2**30, bytes_per_pixel=16_384, elements_per_pixel=1024, multiple_of=1
        )
        == 256
    )
    assert (
        tile_side(
            budget_bytes=2**30, bytes_per_pixel=16_384, elements_per_pixel=1024, multiple_of=24
        )
        == 240
    )


@pytest.mark.parametrize("model_id", ["realesrgan-x4plus", "realesr-animevideov3"])
def test_tile_side_keeps_one_samples_activation_indexable_by_32_bits(model_id: str) -> None:
    """A big GPU's memory budget alone would allow tiles cuDNN cannot index."""
    spec = get_model(model_id)
    side = tile_side(
        budget_bytes=1e15,
        bytes_per_pixel=spec.work_bytes_per_pixel,
        elements_per_pixel=spec.widest_activation,
        multiple_of=spec.multiple_of,
    )
    assert side * side * spec.widest_activation <= MAX_SAMPLE_ELEMENTS
    assert (side + 1) ** 2 * spec.widest_activation > MAX_SAMPLE_ELEMENTS


@pytest.mark.parametrize(
    "model_id", [pytest.param("realesrgan-x4plus", marks=pytest.mark.slow), "realesr-animevideov3"]
)
def test_widest_activation_matches_the_network(model_id: str) -> None:
    """x4plus: 64 features at 4x (conv_up2, conv_hr); the compact net: 64 at 1x."""
    spec = get_model(model_id)
    network = ModelCache().network(spec, torch.device("cpu"), torch.float32)
    widest = 0

    def record(_: nn.Module, __: object, out: torch.Tensor) -> None:
        nonlocal widest
        widest = max(widest, out[0].numel())

    leaves = [m for m in network.modules() if not list(m.children())]
    hooks = [m.register_forward_hook(record) for m in leaves]
    with torch.inference_mode():
        network(torch.zeros(1, 3, 8, 8))
    for hook in hooks:
        hook.remove()
    assert widest == spec.widest_activation * 8 * 8
