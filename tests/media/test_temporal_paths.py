"""The temporal stage on its ways in: ``upres upscale --temporal/--no-temporal``,
``UPRES_TEMPORAL`` in the service's wiring, and AnimeSR through the CLI."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np
import pytest
from typer.testing import CliRunner

from tests.clips import make_clip
from upres.cli import build_app
from upres.config import Settings
from upres.domain.tasks import Factor
from upres.pipeline.recurrent import RecurrentUpscaler
from upres.pipeline.temporal import StabilisedUpscaler
from upres.worker_wiring import upscalers

FAST_MODEL = ["--model", "realesr-animevideov3", "--device", "cpu"]


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_clip(tmp_path_factory.mktemp("temporal") / "in.mp4", frames=6, fps=6)


def _frames(path: Path) -> np.ndarray:
    with av.open(str(path)) as container:
        return np.stack([f.to_ndarray(format="rgb24") for f in container.decode(video=0)])


def _upscale(clip: Path, output: Path, *options: str) -> np.ndarray:
    args = ["upscale", str(clip), str(output), "--factor", "2", *options]
    result = CliRunner().invoke(build_app(), args)
    assert result.exit_code == 0, result.stderr
    return _frames(output)


def test_cli_temporal_on_by_default_and_off_on_request(tmp_path: Path, clip: Path) -> None:
    default = _upscale(clip, tmp_path / "default.mp4", *FAST_MODEL)
    on = _upscale(clip, tmp_path / "on.mp4", *FAST_MODEL, "--temporal")
    off = _upscale(clip, tmp_path / "off.mp4", *FAST_MODEL, "--no-temporal")
    assert default.shape == on.shape == off.shape == (6, 96, 128, 3)
    assert np.array_equal(default, on)
    # The first frame has no predecessor, so it is the model's own in both.
    assert np.abs(on[0].astype(int) - off[0].astype(int)).mean() < 1.0
    assert not np.array_equal(on[1:], off[1:])


def test_cli_runs_the_recurrent_anime_model(tmp_path: Path, clip: Path) -> None:
    out = _upscale(clip, tmp_path / "anime.mp4", "--model", "animesr-v2", "--device", "cpu")
    assert out.shape == (6, 96, 128, 3)


def test_service_wraps_each_task_in_a_fresh_stabiliser() -> None:
    settings = Settings(device="cpu", model="realesr-animevideov3")
    upscaler_for = upscalers(settings)
    first, second = upscaler_for(Factor.X2), upscaler_for(Factor.X2)
    assert isinstance(first, StabilisedUpscaler)
    assert isinstance(second, StabilisedUpscaler)
    assert first.stabiliser is not second.stabiliser


def test_service_without_temporal_runs_the_bare_model() -> None:
    settings = Settings(device="cpu", model="realesr-animevideov3", temporal=False)
    upscaler_for = upscalers(settings)
    bare = upscaler_for(Factor.X4)
    assert not isinstance(bare, StabilisedUpscaler)
    assert bare.factor == 4
    assert upscaler_for(Factor.X4) is bare  # loaded once, kept


def test_service_gives_each_task_a_fresh_recurrent_model() -> None:
    upscaler_for = upscalers(Settings(device="cpu", model="animesr-v2", temporal=False))
    first, second = upscaler_for(Factor.X4), upscaler_for(Factor.X4)
    assert isinstance(first, RecurrentUpscaler)
    assert first is not second


def test_temporal_setting_reads_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("UPRES_TEMPORAL", "false")
    monkeypatch.setenv("UPRES_TEMPORAL_FLOW", "spynet")
    settings = Settings()
    assert settings.temporal is False
    assert settings.temporal_flow == "spynet"
    monkeypatch.delenv("UPRES_TEMPORAL")
    assert Settings().temporal is True
