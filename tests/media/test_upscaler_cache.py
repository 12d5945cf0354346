"""UpscalerCache: a worker's few most used networks, built on demand with real
weights (the compact model on PyTorch, CPU), kept, shared across factors, and
freed when evicted."""

from __future__ import annotations

import gc
import weakref
from collections.abc import Callable
from typing import Any

import pytest
import torch

from upres.domain.tasks import Factor
from upres.models import loader
from upres.models.registry import get_model
from upres.models.specs import Runtime
from upres.pipeline.runtimes import Device, Placement
from upres.pipeline.upscaler_cache import KEPT_UPSCALERS, UpscalerCache, UpscalerKey

COMPACT = get_model("realesr-animevideov3")
ON_CPU = Placement(runtime=Runtime.PYTORCH, device=Device(kind="cpu"))
FRAME = torch.zeros((1, 8, 8, 3), dtype=torch.uint8)


def key(factor: Factor, network: str = COMPACT.id, denoise: int | None = None) -> UpscalerKey:
    return UpscalerKey(network=network, denoise=denoise, factor=factor, placement=ON_CPU)


@pytest.fixture
def loads(monkeypatch: pytest.MonkeyPatch) -> list[weakref.ref[Any]]:
    """A weak reference to each network the cache's entries load from their wheel."""
    loaded: list[weakref.ref[Any]] = []
    real: Callable[..., Any] = loader.load_descriptor

    def counting(*args: Any) -> Any:
        descriptor = real(*args)
        loaded.append(weakref.ref(descriptor.model))
        return descriptor

    monkeypatch.setattr(loader, "load_descriptor", counting)
    return loaded


def test_an_upscaler_is_built_once_and_kept(loads: list[weakref.ref[Any]]) -> None:
    cache = UpscalerCache()
    first = cache.upscaler(COMPACT, key(Factor.X2))
    assert cache.upscaler(COMPACT, key(Factor.X2)) is first
    assert first.upscale(FRAME).shape == (1, 16, 16, 3)
    # Another factor of the same network runs on the same loaded weights.
    assert cache.upscaler(COMPACT, key(Factor.X4)).upscale(FRAME).shape == (1, 32, 32, 3)
    assert len(loads) == 1


def test_the_least_recently_used_goes_first(loads: list[weakref.ref[Any]]) -> None:
    cache = UpscalerCache(capacity=2)
    one = cache.upscaler(COMPACT, key(Factor.ENHANCE))
    two = cache.upscaler(COMPACT, key(Factor.X2))
    assert cache.upscaler(COMPACT, key(Factor.ENHANCE)) is one  # now the most recent
    cache.upscaler(COMPACT, key(Factor.X4))  # one too many: X2 goes

    assert cache.upscaler(COMPACT, key(Factor.ENHANCE)) is one
    assert cache.upscaler(COMPACT, key(Factor.X2)) is not two


def test_an_evicted_networks_weights_are_freed(loads: list[weakref.ref[Any]]) -> None:
    cache = UpscalerCache(capacity=2)
    for factor in (Factor.X2, Factor.X4):
        cache.upscaler(COMPACT, key(factor)).upscale(FRAME)
    (weights,) = loads
    # Another network, at two denoise levels (two sets of weights), pushes out
    # both of the first one's entries.
    for level in (1, 2):
        cache.upscaler(COMPACT, key(Factor.X2, network="other", denoise=level)).upscale(FRAME)
    gc.collect()

    assert weights() is None
    assert len(loads) == 3
    assert all(kept() is not None for kept in loads[1:])


def test_a_recurrent_network_is_fresh_for_each_video() -> None:
    recurrent = get_model("animesr-v2")
    cache = UpscalerCache()
    first = cache.upscaler(recurrent, key(Factor.X4, network=recurrent.id))
    assert cache.upscaler(recurrent, key(Factor.X4, network=recurrent.id)) is not first


def test_by_default_the_three_most_recently_used_are_kept() -> None:
    cache = UpscalerCache()
    keys = [key(Factor.X2, network=f"n{index}") for index in range(KEPT_UPSCALERS + 1)]
    built = [cache.upscaler(COMPACT, each) for each in keys]

    pairs = zip(keys[1:], built[1:], strict=True)
    kept = [cache.upscaler(COMPACT, each) is old for each, old in pairs]
    assert kept == [True] * KEPT_UPSCALERS
    assert cache.upscaler(COMPACT, keys[0]) is not built[0]
