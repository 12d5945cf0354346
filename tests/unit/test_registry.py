"""The model registry and ``upres models list``."""

from __future__ import annotations

import dataclasses

import pytest
from typer.testing import CliRunner

from upres.cli import build_app
from upres.domain.tasks import Factor
from upres.errors import ModelError, UnknownModel
from upres.models.registry import (
    MODELS,
    Architecture,
    default_factors,
    default_model_for,
    get_model,
    model_for,
)


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


def test_specs_are_frozen() -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        MODELS[0].scale = 2  # type: ignore[misc]


def test_models_list_shows_every_model_and_defaults() -> None:
    result = CliRunner().invoke(build_app(), ["models", "list"], env={"COLUMNS": "240"})
    assert result.exit_code == 0, result.output
    for spec in MODELS:
        assert spec.id in result.output
    assert "1x, 2x, 4x" in result.output
    assert "BSD-3-Clause" in result.output
    assert "pytorch, ncnn (CPU: ncnn)" in result.output
