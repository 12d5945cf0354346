"""``upres models list``: every model, its factors, licence and runtimes (it loads torch
and ncnn to tell which runtime the CPU gets)."""

from __future__ import annotations

from typer.testing import CliRunner

from upres.cli import build_app
from upres.models.registry import MODELS


def test_models_list_shows_every_model_and_defaults() -> None:
    result = CliRunner().invoke(build_app(), ["models", "list"], env={"COLUMNS": "240"})
    assert result.exit_code == 0, result.output
    for spec in MODELS:
        assert spec.id in result.output
    assert "1x, 2x, 4x" in result.output
    assert "BSD-3-Clause" in result.output
    assert "pytorch, ncnn (CPU: ncnn)" in result.output
    row = next(line for line in result.output.splitlines() if "realcugan-se-x2 " in line)
    assert "0, 1, 2, 3" in row
    assert "2x native (1x by downscale)" in row
