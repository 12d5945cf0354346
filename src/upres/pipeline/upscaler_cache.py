"""The few networks a worker keeps built: the most recently used, up to a small constant.

Tasks choose their network, so one worker may be asked for any registered
one: it builds each on demand and keeps the ``KEPT_UPSCALERS`` most recently
used, keyed by (network, denoise level, factor, placement). The entries of
one network at several factors share its weights (loaded once); the weights
go when the last entry using them is evicted and no running video holds
them, and on CUDA the allocator's cache is emptied then, so the next
network finds the memory free. Three covers a worker serving the default
network at every factor (one set of weights) plus a chosen network or two;
a built RRDBNet holds about 70 MB of weights (fp32) besides its buffers.
"""

from __future__ import annotations

import gc
import threading
from collections import OrderedDict
from dataclasses import dataclass
from functools import partial
from typing import Protocol
from weakref import WeakValueDictionary

import torch

from upres.domain.tasks import Factor
from upres.models.loader import ModelCache
from upres.models.ncnn_runtime import NcnnCache
from upres.models.specs import ModelSpec
from upres.pipeline.frames import FrameUpscaler
from upres.pipeline.recurrent import RecurrentNetworks
from upres.pipeline.runtimes import Placement, build_upscaler

KEPT_UPSCALERS = 3


class UpscalerFactory(Protocol):
    """Gives the upscaler for a task: its factor, on its network at its denoise
    level (None: the worker's default network, no level chosen)."""

    def __call__(
        self, factor: Factor, *, network: str | None = None, denoise: int | None = None
    ) -> FrameUpscaler: ...


@dataclass(frozen=True, kw_only=True)
class UpscalerKey:
    """What tells two built upscalers apart."""

    network: str
    denoise: int | None
    factor: Factor
    placement: Placement

    @property
    def weights(self) -> tuple[str, int | None, Placement]:
        """What tells two networks' weights apart: all but the factor."""
        return (self.network, self.denoise, self.placement)


class _Weights:
    """One network's loaded weights, for every runtime that may hold them."""

    def __init__(self) -> None:
        self.models = ModelCache()
        self.ncnn = NcnnCache()
        self.recurrent = RecurrentNetworks()


class _Entry:
    """A kept upscaler: the same one for every video, or for a model that carries
    state from frame to frame a fresh one per video around the kept weights."""

    def __init__(self, spec: ModelSpec, key: UpscalerKey, weights: _Weights) -> None:
        self._weights = weights  # alive while an entry of its network is kept
        self._make = partial(
            build_upscaler,
            spec,
            key.factor,
            key.placement,
            models=weights.models,
            networks=weights.ncnn,
            recurrent=weights.recurrent,
        )
        self._built = None if spec.recurrent else self._make()

    def upscaler(self) -> FrameUpscaler:
        return self._make() if self._built is None else self._built


class UpscalerCache:
    """The ``capacity`` most recently used upscalers; safe across threads."""

    def __init__(self, capacity: int = KEPT_UPSCALERS) -> None:
        self._capacity = capacity
        self._entries: OrderedDict[UpscalerKey, _Entry] = OrderedDict()
        self._weights: WeakValueDictionary[tuple[str, int | None, Placement], _Weights] = (
            WeakValueDictionary()
        )
        self._lock = threading.Lock()

    def upscaler(self, spec: ModelSpec, key: UpscalerKey) -> FrameUpscaler:
        """``spec`` (the network ``key`` names) as ``key`` says, kept or built now;
        when a new one would be one too many, the least recently used is dropped
        first, so its memory is free before the new one takes some.

        Raises ModelError as ``build_upscaler``, keeping nothing new.
        """
        with self._lock:
            entry = self._entries.pop(key, None)
            if entry is None:
                self._evict_past(self._capacity - 1)
                entry = _Entry(spec, key, self._weights_of(key))
            self._entries[key] = entry
        return entry.upscaler()

    def _weights_of(self, key: UpscalerKey) -> _Weights:
        weights = self._weights.get(key.weights)
        if weights is None:
            weights = self._weights[key.weights] = _Weights()
        return weights

    def _evict_past(self, kept: int) -> None:
        evicted = []
        while len(self._entries) > kept:
            evicted.append(self._entries.popitem(last=False)[0])
        if evicted:
            # Only the dropped entries held these weights: collect them now, and
            # on CUDA hand the allocator's cached blocks back to the device.
            gc.collect()
            if any(key.placement.device.kind == "cuda" for key in evicted):
                torch.cuda.empty_cache()
