"""ModelSpec -> spandrel ``ImageModelDescriptor`` on a device, and a cache of loaded models.

spandrel is imported when a model is first loaded, not with this module: it
takes seconds to import (every architecture it knows), and the API process,
the CLI's other commands and most tests never load a model.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, TypeAlias

import torch

from upres.errors import ModelError
from upres.models.ncnn import convert
from upres.models.registry import model_files
from upres.models.specs import ModelSpec

if TYPE_CHECKING:
    from spandrel import ImageModelDescriptor

Descriptor: TypeAlias = "ImageModelDescriptor[Any]"


def read_state_dict(spec: ModelSpec) -> dict[str, torch.Tensor]:
    """The weights of ``spec`` from its package, as a PyTorch state dict.

    Raises ModelError when the package or its files are missing or malformed.
    """
    with model_files(spec) as (param, weights):
        param_text = param.read_text(encoding="ascii")
        bin_data = weights.read_bytes()
    return convert(param_text, bin_data, spec.architecture)


def load_descriptor(spec: ModelSpec, device: torch.device, dtype: torch.dtype) -> Descriptor:
    """A ready-to-run (eval mode, no grad) descriptor of ``spec`` on ``device`` in ``dtype``.

    Raises ModelError when spandrel does not recognise the weights, their
    scale differs from the spec's, or the model cannot move to ``device``.
    """
    from spandrel import ImageModelDescriptor, ModelLoader  # noqa: PLC0415 (see the module doc)

    state = read_state_dict(spec)
    try:
        descriptor = ModelLoader().load_from_state_dict(state)
        descriptor.to(device=device, dtype=dtype).eval()
    except (RuntimeError, ValueError, TypeError) as exc:
        raise ModelError(f"model {spec.id} could not be loaded: {exc}") from exc
    if not isinstance(descriptor, ImageModelDescriptor) or descriptor.scale != spec.scale:
        raise ModelError(f"model {spec.id} did not load as a {spec.scale}x image model")
    descriptor.model.requires_grad_(False)
    return descriptor


class ModelCache:
    """Loaded models keyed by (spec, device, dtype), so a worker loads each once; the
    whole spec, because the denoise levels of one network id are different files."""

    def __init__(self) -> None:
        self._loaded: dict[tuple[ModelSpec, str, torch.dtype], Descriptor] = {}

    def descriptor(self, spec: ModelSpec, device: torch.device, dtype: torch.dtype) -> Descriptor:
        """The cached descriptor, loading it on first use. Raises ModelError as load_descriptor."""
        key = (spec, str(device), dtype)
        if key not in self._loaded:
            self._loaded[key] = load_descriptor(spec, device, dtype)
        return self._loaded[key]

    def network(self, spec: ModelSpec, device: torch.device, dtype: torch.dtype) -> torch.nn.Module:
        """The bare network: (N, 3, H, W) in [0, 1] -> (N, 3, H*scale, W*scale), unclamped."""
        module: torch.nn.Module = self.descriptor(spec, device, dtype).model
        return module

    def clear(self) -> None:
        """Forget every loaded model (frees its device memory once unreferenced)."""
        self._loaded.clear()
