"""ncnn ``.param``/``.bin`` -> PyTorch state dicts in the networks' original layouts.

The ``.param`` file lists layers in execution order; the ``.bin`` file holds
the weights of those layers back to back in the same order. For each
``Convolution``: a 4-byte storage tag (``0x01306B47`` = fp16, ``0`` = fp32)
then the ``out*in*kh*kw`` weights (fp16 data padded to 4 bytes), then, when the
layer has a bias, ``out`` raw fp32 values. ``Deconvolution`` is stored like a
``Convolution`` with the output channels first (PyTorch's transposed
convolution has the input channels first; the kernel is not flipped), and
``InnerProduct`` as a tagged ``out*in`` matrix and an optional bias. ``PReLU``
holds its slopes as raw fp32. The networks upres reads (RRDBNet,
SRVGGNetCompact, Real-CUGAN) were exported from PyTorch, so their weighted
layers appear in the same order as the modules of the original network, and
mapping them is a matter of naming the n-th weighted layer. ``spandrel``
then recognises the architecture from the key names and shapes. Converting
the largest model (x4plus, 33 MB) takes about 0.4 s on one CPU core, so
converted state dicts are not cached; the loaded networks are
(``upres.models.loader.ModelCache``).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, replace

import numpy as np
import torch

from upres.errors import ModelError
from upres.models import realcugan
from upres.models.specs import Architecture

_MAGIC = "7767517"
_FP16_TAG = 0x01306B47
_FP32_TAG = 0
_WEIGHTLESS = frozenset(
    {
        "Input",
        "Split",
        "Concat",
        "Eltwise",
        "BinaryOp",
        "Interp",
        "PixelShuffle",
        "ReLU",
        "Pooling",
        "Crop",
    }
)
# RRDBNet: conv_first, 23 (or 6 for the anime model) RRDB blocks of 3 dense
# blocks of 5 convolutions, then conv_body and the upsampling tail.
_RRDB_HEAD = ("conv_first",)
_RRDB_TAIL = ("conv_body", "conv_up1", "conv_up2", "conv_hr", "conv_last")
_CONVS_PER_RRDB = 15


@dataclass(frozen=True, kw_only=True)
class NcnnLayer:
    """One line of a ``.param`` file. ``params`` maps an ncnn param id to its raw text."""

    type: str
    name: str
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    params: Mapping[int, str]

    def int_param(self, key: int, default: int | None = None) -> int:
        """The integer param ``key``.

        Raises ModelError when it is absent and there is no default.
        """
        if key in self.params:
            return int(self.params[key])
        if default is None:
            raise ModelError(f"ncnn layer {self.name} lacks param {key}")
        return default


@dataclass(frozen=True, kw_only=True)
class LayerWeights:
    """The tensors one weighted ncnn layer holds, shaped as PyTorch expects them."""

    layer: NcnnLayer
    weight: torch.Tensor
    bias: torch.Tensor | None


def _parse_line(line: str) -> NcnnLayer:
    fields = line.split()
    n_in, n_out = int(fields[2]), int(fields[3])
    blobs = fields[4 : 4 + n_in + n_out]
    params: dict[int, str] = {}
    for item in fields[4 + n_in + n_out :]:
        key, _, value = item.partition("=")
        params[int(key)] = value
    return NcnnLayer(
        type=fields[0],
        name=fields[1],
        inputs=tuple(blobs[:n_in]),
        outputs=tuple(blobs[n_in:]),
        params=params,
    )


def parse_param(text: str) -> tuple[NcnnLayer, ...]:
    """Parse the text form of an ncnn ``.param`` file.

    Raises ModelError when the magic number or the layer count is wrong.
    """
    lines = [line for line in text.splitlines() if line.strip()]
    if not lines or lines[0].strip() != _MAGIC:
        raise ModelError("not an ncnn .param file (bad magic number)")
    try:
        layer_count = int(lines[1].split()[0])
        layers = tuple(_parse_line(line) for line in lines[2:])
    except (IndexError, ValueError) as exc:
        raise ModelError(f"malformed ncnn .param file: {exc}") from exc
    if len(layers) != layer_count:
        raise ModelError(f"ncnn .param declares {layer_count} layers but holds {len(layers)}")
    return layers


class _Reader:
    """Sequential reads of little-endian arrays from a ``.bin`` buffer."""

    def __init__(self, data: bytes) -> None:
        self._data = data
        self.offset = 0

    def array(self, dtype: str, count: int) -> np.ndarray:
        """The next ``count`` values. Raises ModelError when the buffer ends first."""
        size = np.dtype(dtype).itemsize * count
        if self.offset + size > len(self._data):
            raise ModelError("ncnn .bin file ends before its last layer's weights")
        values = np.frombuffer(self._data, dtype=dtype, count=count, offset=self.offset)
        self.offset += size
        return values

    def tagged(self, count: int) -> np.ndarray:
        """A tag-prefixed weight blob as fp32. Raises ModelError for quantised storage."""
        tag = int(self.array("<u4", 1)[0])
        if tag == _FP32_TAG:
            return self.array("<f4", count)
        if tag != _FP16_TAG:
            raise ModelError(f"unsupported ncnn weight storage tag {tag:#010x}")
        values = self.array("<f2", count).astype(np.float32)
        self.offset += -self.offset % 4
        return values


def _convolution(layer: NcnnLayer, reader: _Reader) -> LayerWeights:
    out_ch = layer.int_param(0)
    kernel_w = layer.int_param(1)
    kernel_h = layer.int_param(11, kernel_w)
    size = layer.int_param(6)
    in_ch = size // (out_ch * kernel_h * kernel_w)
    weight = reader.tagged(size).reshape(out_ch, in_ch, kernel_h, kernel_w)
    bias = reader.array("<f4", out_ch) if layer.int_param(5, 0) else None
    return LayerWeights(
        layer=layer,
        weight=torch.from_numpy(weight.copy()),
        bias=None if bias is None else torch.from_numpy(bias.copy()),
    )


def _deconvolution(layer: NcnnLayer, reader: _Reader) -> LayerWeights:
    stored = _convolution(layer, reader)
    return replace(stored, weight=stored.weight.transpose(0, 1).contiguous())


def _inner_product(layer: NcnnLayer, reader: _Reader) -> LayerWeights:
    out_features, size = layer.int_param(0), layer.int_param(2)
    weight = reader.tagged(size).reshape(out_features, size // out_features)
    bias = reader.array("<f4", out_features) if layer.int_param(1, 0) else None
    return LayerWeights(
        layer=layer,
        weight=torch.from_numpy(weight.copy()),
        bias=None if bias is None else torch.from_numpy(bias.copy()),
    )


def _prelu(layer: NcnnLayer, reader: _Reader) -> LayerWeights:
    slopes = reader.array("<f4", layer.int_param(0, 1))
    return LayerWeights(layer=layer, weight=torch.from_numpy(slopes.copy()), bias=None)


def read_weights(layers: tuple[NcnnLayer, ...], data: bytes) -> tuple[LayerWeights, ...]:
    """The weights of every weighted layer, in ``.param`` order.

    Raises ModelError on a layer type the converter does not know, or when the
    ``.bin`` size does not match the layers exactly.
    """
    reader = _Reader(data)
    found = tuple(_read_layers(layers, reader))
    if reader.offset != len(data):
        raise ModelError(f"ncnn .bin has {len(data) - reader.offset} bytes left over")
    return found


def _read_layers(layers: tuple[NcnnLayer, ...], reader: _Reader) -> Iterator[LayerWeights]:
    for layer in layers:
        if layer.type == "Convolution":
            yield _convolution(layer, reader)
        elif layer.type == "Deconvolution":
            yield _deconvolution(layer, reader)
        elif layer.type == "InnerProduct":
            yield _inner_product(layer, reader)
        elif layer.type == "PReLU":
            yield _prelu(layer, reader)
        elif layer.type not in _WEIGHTLESS:
            raise ModelError(f"ncnn layer type {layer.type} is not supported")


def _rrdb_names(conv_count: int) -> list[str]:
    blocks, rest = divmod(conv_count - len(_RRDB_HEAD) - len(_RRDB_TAIL), _CONVS_PER_RRDB)
    if rest or blocks < 1:
        raise ModelError(f"{conv_count} convolutions do not form an RRDBNet")
    body = [
        f"body.{block}.rdb{dense}.conv{conv}"
        for block in range(blocks)
        for dense in (1, 2, 3)
        for conv in range(1, 6)
    ]
    return [*_RRDB_HEAD, *body, *_RRDB_TAIL]


def _rrdbnet_state_dict(weights: tuple[LayerWeights, ...]) -> dict[str, torch.Tensor]:
    if any(w.layer.type != "Convolution" for w in weights):
        raise ModelError("an RRDBNet holds only convolutions")
    state: dict[str, torch.Tensor] = {}
    for name, item in zip(_rrdb_names(len(weights)), weights, strict=True):
        state[f"{name}.weight"] = item.weight
        if item.bias is not None:
            state[f"{name}.bias"] = item.bias
    return state


def _compact_state_dict(weights: tuple[LayerWeights, ...]) -> dict[str, torch.Tensor]:
    expected = ("Convolution", "PReLU")
    state: dict[str, torch.Tensor] = {}
    for index, item in enumerate(weights):
        if item.layer.type != expected[index % 2]:
            raise ModelError("an SRVGGNetCompact alternates convolutions and PReLUs")
        state[f"body.{index}.weight"] = item.weight
        if item.bias is not None:
            state[f"body.{index}.bias"] = item.bias
    return state


def _realcugan_state_dict(weights: tuple[LayerWeights, ...]) -> dict[str, torch.Tensor]:
    # Only the 4x network has a layer after the U-Nets (its final convolution).
    names = realcugan.state_dict_names(4)
    if len(weights) != len(names):
        names = realcugan.state_dict_names(2)
    if len(weights) != len(names):
        raise ModelError(f"{len(weights)} weighted layers do not form a Real-CUGAN")
    state: dict[str, torch.Tensor] = {}
    for name, item in zip(names, weights, strict=True):
        # The squeeze-and-excitation layers are 1x1 convolutions in spandrel.
        is_dense = item.layer.type == "InnerProduct"
        state[f"{name}.weight"] = item.weight[..., None, None] if is_dense else item.weight
        if item.bias is not None:
            state[f"{name}.bias"] = item.bias
    return state


def convert(
    param_text: str, bin_data: bytes, architecture: Architecture
) -> dict[str, torch.Tensor]:
    """Turn an ncnn model into a state dict in ``architecture``'s original PyTorch layout.

    Raises ModelError when the files are malformed or do not fit the architecture.
    """
    weights = read_weights(parse_param(param_text), bin_data)
    if architecture is Architecture.RRDBNET:
        return _rrdbnet_state_dict(weights)
    if architecture is Architecture.REALCUGAN:
        return _realcugan_state_dict(weights)
    return _compact_state_dict(weights)
