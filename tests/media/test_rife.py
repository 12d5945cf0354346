"""RIFE: strict loading of the shipped weights, and the middle of a known shift."""

from __future__ import annotations

import pytest
import torch
from skimage import data
from torch import nn
from typer.testing import CliRunner

from upres.cli import build_app
from upres.errors import ModelError
from upres.models import rife
from upres.models.checkpoints import load_strictly
from upres.models.registry import INTERPOLATORS, MODELS
from upres.models.rife import RIFE, load_rife, rife_state_dict

CPU = torch.device("cpu")
# A band this wide at each edge is left out of comparisons: what enters the frame is unknown.
EDGE = 12


@pytest.fixture(scope="module")
def network() -> RIFE:
    return load_rife(CPU)


def _photo(dx: int) -> torch.Tensor:
    """(1, 3, 64, 128) of the astronaut photo, its window moved ``dx`` pixels right."""
    image = data.astronaut()[140:204, 120 + dx : 248 + dx].copy()
    return torch.from_numpy(image).permute(2, 0, 1)[None].float() / 255.0


def _psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    inner = (..., slice(EDGE, -EDGE), slice(EDGE, -EDGE))
    mse = ((a[inner] - b[inner]) ** 2).mean().item()
    return float(10 * torch.log10(torch.tensor(1.0 / mse)))


def test_the_shipped_weights_fit_every_parameter_and_buffer() -> None:
    state = rife_state_dict()
    assert set(state) == set(RIFE().state_dict())
    assert not any(k.startswith(("module.", "block_tea.")) for k in state)


def test_a_missing_or_extra_weight_is_refused() -> None:
    state = rife_state_dict()
    missing = {k: v for k, v in state.items() if k != "unet.conv.bias"}
    with pytest.raises(ModelError, match="do not fit"):
        load_strictly(RIFE(), missing, what="RIFE", device=CPU, dtype=torch.float32)
    extra = {**state, "block4.lastconv.bias": torch.zeros(5)}
    with pytest.raises(ModelError, match="do not fit"):
        load_strictly(RIFE(), extra, what="RIFE", device=CPU, dtype=torch.float32)


def test_a_missing_wheel_is_a_model_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(rife, "RIFE_DISTRIBUTION", "no-such-wheel")
    with pytest.raises(ModelError, match="not installed"):
        rife_state_dict()


@pytest.mark.parametrize("shift", [6, 16])
def test_the_middle_of_a_known_shift_is_the_half_shift(network: RIFE, shift: int) -> None:
    first, second, truth = _photo(0), _photo(shift), _photo(shift // 2)
    with torch.inference_mode():
        middle = network(first, second, torch.full((1, 1, 1, 1), 0.5))
    blended = (first + second) / 2
    assert _psnr(middle, truth) > 35.0
    assert _psnr(middle, truth) > _psnr(blended, truth) + 12.0


def test_the_timestep_moves_the_frame_along_the_motion(network: RIFE) -> None:
    first, second = _photo(0), _photo(16)
    with torch.inference_mode():
        quarter = network(first, second, torch.full((1, 1, 1, 1), 0.25))
    assert _psnr(quarter, _photo(4)) > _psnr(quarter, _photo(8)) + 6.0
    assert _psnr(quarter, _photo(4)) > 30.0


def test_the_registry_lists_rife_with_its_arithmetic(network: RIFE) -> None:
    spec = next(s for s in INTERPOLATORS if s.id == "rife-v3.9")
    assert (spec.package, spec.file) == (rife.RIFE_DISTRIBUTION, rife.RIFE_FILE)
    assert spec.id not in {m.id for m in MODELS}
    macs = 0

    def count(module: nn.Module, inputs: tuple[torch.Tensor, ...], output: torch.Tensor) -> None:
        nonlocal macs
        if isinstance(module, nn.ConvTranspose2d):
            macs += inputs[0].numel() * module.out_channels * 16
        elif isinstance(module, nn.Conv2d):
            macs += output.numel() * module.in_channels * 9

    hooks = [
        m.register_forward_hook(count)
        for m in network.modules()
        if isinstance(m, nn.Conv2d | nn.ConvTranspose2d)
    ]
    frame = _photo(0)
    with torch.inference_mode():
        network(frame, frame, torch.full((1, 1, 1, 1), 0.5))
    for hook in hooks:
        hook.remove()
    gflop_per_mpixel = 2 * macs / frame[0, 0].numel() / 1000
    assert gflop_per_mpixel == pytest.approx(spec.gflop_per_mpixel, rel=1e-3)


def test_models_list_shows_the_interpolation_network() -> None:
    result = CliRunner().invoke(build_app(), ["models", "list"])
    assert result.exit_code == 0
    assert "interpolation networks" in result.stdout
    assert "rife-v3.9" in result.stdout
