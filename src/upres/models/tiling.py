"""Pure pad / split / blend / crop functions for running a network on large frames.

A frame too big for the device is split into overlapping tiles. Each tile's
output is weighted by a linear ramp that is zero over the ``margin`` pixels
next to an inner tile edge (where the network saw no context) and rises to
one across the rest of the overlap; the weighted sum divided by the summed
weights has no seams. For a network whose receptive field radius is at most
``margin`` input pixels the tiled result equals the untiled one.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch.nn import functional

from upres.errors import ModelError

Network = Callable[[torch.Tensor], torch.Tensor]


@dataclass(frozen=True, kw_only=True)
class Padding:
    """How much ``pad_to`` added below and to the right of an (..., H, W) tensor."""

    height: int
    width: int
    bottom: int
    right: int


@dataclass(frozen=True, kw_only=True)
class TileSpec:
    """Tile edge ``size``, ``overlap`` between neighbours and blend ``margin``, in input pixels."""

    size: int
    overlap: int
    margin: int


@dataclass(frozen=True, kw_only=True)
class TileGrid:
    """Where tiles start along one axis of ``length`` pixels; every tile is ``size`` long."""

    length: int
    size: int
    starts: tuple[int, ...]


def _padded(length: int, multiple_of: int, min_size: int) -> int:
    needed = max(length, min_size)
    return -(-needed // multiple_of) * multiple_of


def pad_to(
    x: torch.Tensor, *, multiple_of: int = 1, min_size: int = 1
) -> tuple[torch.Tensor, Padding]:
    """Pad (N, C, H, W) at the bottom/right to a multiple of ``multiple_of``, at least ``min_size``.

    Reflection is used where the frame is large enough (it continues texture
    without a hard edge), edge replication otherwise.
    """
    height, width = x.shape[-2:]
    bottom = _padded(height, multiple_of, min_size) - height
    right = _padded(width, multiple_of, min_size) - width
    padding = Padding(height=height, width=width, bottom=bottom, right=right)
    if bottom == right == 0:
        return x, padding
    mode = "reflect" if bottom < height and right < width else "replicate"
    return functional.pad(x, (0, right, 0, bottom), mode=mode), padding


def crop(y: torch.Tensor, padding: Padding, scale: int) -> torch.Tensor:
    """Remove the (scaled) padding that ``pad_to`` added from a network output."""
    return y[..., : padding.height * scale, : padding.width * scale]


# cuDNN indexes one sample of a convolution with 32-bit integers; PyTorch splits
# only the batch dimension, so one sample's activation must stay below this.
MAX_SAMPLE_ELEMENTS = 2**31 - 1


def tile_side(
    *, budget_bytes: float, bytes_per_pixel: int, elements_per_pixel: int, multiple_of: int
) -> int:
    """The largest tile side (input pixels, a multiple of ``multiple_of``) that the device allows.

    A square tile of that side needs at most ``budget_bytes`` of work memory
    (``bytes_per_pixel`` per input pixel, whole batch) and its widest
    activation (``elements_per_pixel`` per input pixel, one sample) stays under
    ``MAX_SAMPLE_ELEMENTS``.
    """
    by_memory = math.isqrt(int(budget_bytes // bytes_per_pixel))
    by_indexing = math.isqrt(MAX_SAMPLE_ELEMENTS // elements_per_pixel)
    return min(by_memory, by_indexing) // multiple_of * multiple_of


def plan_axis(length: int, *, tile: int, overlap: int, multiple_of: int = 1) -> TileGrid:
    """The fewest tiles of at most ``tile`` px covering ``length``, overlapping by >= ``overlap``.

    Tiles are made as small as that count allows and spread evenly, so the
    overlap is not much more than asked (a fixed ``tile`` with the last tile
    pushed back to the end can compute ~1.7x the frame's pixels; this stays near
    1 + overlap / tile). Sizes and starts are multiples of ``multiple_of`` when
    ``length`` and ``tile`` are.
    Raises ModelError when ``overlap`` leaves no progress between tiles.
    """
    if tile >= length:
        return TileGrid(length=length, size=length, starts=(0,))
    unit = multiple_of if length % multiple_of == 0 and tile % multiple_of == 0 else 1
    units, tile_units, overlap_units = length // unit, tile // unit, -(-overlap // unit)
    if tile_units <= overlap_units:
        raise ModelError(f"tile {tile} is too small for overlap {overlap}")
    count = -(-(units - overlap_units) // (tile_units - overlap_units))
    size = -(-(units + (count - 1) * overlap_units) // count)
    travel = units - size
    starts = tuple(i * travel // (count - 1) * unit for i in range(count))
    return TileGrid(length=length, size=size * unit, starts=starts)


def ramp(grid: TileGrid, start: int, *, overlap: int, margin: int) -> torch.Tensor:
    """The 1-D blend weight of the tile at ``start``: 0 within ``margin`` of an inner edge."""
    offsets = torch.arange(grid.size, dtype=torch.float32)
    width = max(overlap - 2 * margin, 1)
    weight = torch.ones(grid.size)
    if start > 0:
        weight = torch.minimum(weight, ((offsets - margin + 0.5) / width).clamp(0.0, 1.0))
    if start + grid.size < grid.length:
        from_end = grid.size - 1 - offsets
        weight = torch.minimum(weight, ((from_end - margin + 0.5) / width).clamp(0.0, 1.0))
    return weight


def run_tiled(
    x: torch.Tensor,
    network: Network,
    *,
    scale: int,
    tiles: TileSpec,
    multiple_of: int = 1,
) -> torch.Tensor:
    """Apply ``network`` ((N, C, h, w) -> (N, C, h*scale, w*scale)) to ``x`` tile by tile.

    Raises ModelError when the tile cannot hold the overlap.
    """
    rows = plan_axis(x.shape[-2], tile=tiles.size, overlap=tiles.overlap, multiple_of=multiple_of)
    cols = plan_axis(x.shape[-1], tile=tiles.size, overlap=tiles.overlap, multiple_of=multiple_of)
    out_shape = (x.shape[0], x.shape[1], rows.length * scale, cols.length * scale)
    total = x.new_zeros(out_shape, dtype=torch.float32)
    weights = x.new_zeros(out_shape[-2:], dtype=torch.float32)
    for top in rows.starts:
        for left in cols.starts:
            part = network(x[..., top : top + rows.size, left : left + cols.size]).float()
            weight = _tile_weight(rows, cols, top, left, scale=scale, tiles=tiles).to(x.device)
            y, x0 = top * scale, left * scale
            total[..., y : y + part.shape[-2], x0 : x0 + part.shape[-1]] += part * weight
            weights[y : y + part.shape[-2], x0 : x0 + part.shape[-1]] += weight
    return total / weights


def _tile_weight(
    rows: TileGrid, cols: TileGrid, top: int, left: int, *, scale: int, tiles: TileSpec
) -> torch.Tensor:
    """The 2-D weight of one tile in output pixels: the outer product of the axis ramps."""
    scaled_rows = TileGrid(length=rows.length * scale, size=rows.size * scale, starts=())
    scaled_cols = TileGrid(length=cols.length * scale, size=cols.size * scale, starts=())
    overlap, margin = tiles.overlap * scale, tiles.margin * scale
    wy = ramp(scaled_rows, top * scale, overlap=overlap, margin=margin)
    wx = ramp(scaled_cols, left * scale, overlap=overlap, margin=margin)
    return wy[:, None] * wx[None, :]
