"""Output quality of the default model on real photos, against plain bicubic.

GAN models score below bicubic on PSNR by design (the perception-distortion
trade-off), so nothing here asks for a PSNR win. What is asserted: the model
restores far more fine detail than bicubic (mean squared Laplacian, relative
to the original) and its output, downscaled back, still matches the clean
low-res picture (consistency). docs/QUALITY.md has the full table.
"""

from __future__ import annotations

import numpy as np
import pytest
from bench.quality import (
    Degradation,
    Sample,
    Scores,
    degrade,
    frames_upscaler,
    model_upscaler,
    native_runner,
    photo_crop,
    score,
)

from upres.domain.tasks import Factor
from upres.models.loader import ModelCache
from upres.pipeline.upscale import InterpolationUpscaler

LOW_SIZE = 48
# Bicubic keeps more texture at 2x than at 4x, so the model's lead is smaller there.
DETAIL_GAIN = {Factor.X4: 5.0, Factor.X2: 3.0}
MIN_CONSISTENCY_DB = 25.0
# Realistic inputs are blurred, noisy and JPEG-compressed: even their clean
# interpolation is far from the clean low-res image, so the model is held to
# bicubic's consistency there rather than to an absolute figure.
REALISTIC_SLACK_DB = 1.0

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def cache() -> ModelCache:
    return ModelCache()


def _scores(
    photo: str, kind: Degradation, factor: Factor, cache: ModelCache
) -> tuple[Scores, Scores]:
    """(bicubic, realesrgan-x4plus) scores on one case."""
    sample: Sample = degrade(photo_crop(photo, LOW_SIZE * int(factor)), int(factor), kind)
    bicubic = frames_upscaler(InterpolationUpscaler(factor))(sample.low)
    model = model_upscaler(native_runner("realesrgan-x4plus", cache), factor)(sample.low)
    assert model.shape == sample.original.shape
    assert model.dtype == np.uint8
    return score(bicubic, sample), score(model, sample)


@pytest.mark.parametrize("photo", ["astronaut", "chelsea", "coffee", "rocket"])
def test_4x_restores_detail_and_keeps_the_picture(photo: str, cache: ModelCache) -> None:
    bicubic, model = _scores(photo, "bicubic", Factor.X4, cache)
    assert model.detail >= DETAIL_GAIN[Factor.X4] * bicubic.detail
    assert model.consistency >= MIN_CONSISTENCY_DB


@pytest.mark.parametrize("photo", ["astronaut", "rocket"])
def test_4x_on_degraded_input(photo: str, cache: ModelCache) -> None:
    bicubic, model = _scores(photo, "realistic", Factor.X4, cache)
    assert model.detail >= DETAIL_GAIN[Factor.X4] * bicubic.detail
    assert model.consistency >= bicubic.consistency - REALISTIC_SLACK_DB


@pytest.mark.parametrize("photo", ["chelsea", "coffee"])
def test_2x_restores_detail_and_keeps_the_picture(photo: str, cache: ModelCache) -> None:
    bicubic, model = _scores(photo, "bicubic", Factor.X2, cache)
    assert model.detail >= DETAIL_GAIN[Factor.X2] * bicubic.detail
    assert model.consistency >= MIN_CONSISTENCY_DB


@pytest.mark.parametrize("photo", ["astronaut", "coffee"])
def test_1x_cleans_a_degraded_frame(photo: str, cache: ModelCache) -> None:
    """The blurred input has too little texture; the model brings it closer to the original's."""
    degraded, model = _scores(photo, "realistic", Factor.ENHANCE, cache)
    assert model.consistency >= MIN_CONSISTENCY_DB
    assert abs(np.log(model.detail)) < abs(np.log(degraded.detail))
