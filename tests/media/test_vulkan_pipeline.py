"""``upres upscale --device vulkan``: the whole pipeline on the ncnn runtime's Vulkan device.

On CI that device is Mesa's llvmpipe (Vulkan on the CPU), so the clip is tiny.
Marked ``vulkan``: skipped only when the machine has no Vulkan device at all.
"""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np
import pytest
from typer.testing import CliRunner

from tests.clips import make_clip
from upres.cli import build_app
from upres.domain.media import MediaLimits
from upres.inputs.probe import probe

pytestmark = [
    pytest.mark.slow,
    pytest.mark.vulkan,
]


def _upscale(source: Path, output: Path, device: str) -> None:
    args = ["upscale", str(source), str(output), "--factor", "2", "--codec", "h265"]
    args += ["--model", "realesr-animevideov3", "--device", device]
    result = CliRunner().invoke(build_app(), args)
    assert result.exit_code == 0, result.stderr


def _luma(path: Path) -> np.ndarray:
    with av.open(str(path)) as container:
        planes = [f.to_ndarray(format="gray16le") for f in container.decode(video=0)]
    return np.stack(planes).astype(np.float64) / 65535


def test_a_ten_bit_clip_upscaled_on_vulkan_stays_ten_bit(tmp_path: Path) -> None:
    source = make_clip(
        tmp_path / "in.mp4",
        width=32,
        height=24,
        frames=3,
        fps=3,
        codec="libx265",
        pix_fmt="yuv420p10le",
    )
    on_vulkan, on_cpu = tmp_path / "vulkan.mp4", tmp_path / "cpu.mp4"
    _upscale(source, on_vulkan, "vulkan")
    _upscale(source, on_cpu, "cpu")

    info = probe(on_vulkan, limits=MediaLimits())
    assert (info.width, info.height, info.bit_depth) == (64, 48, 10)
    assert info.has_audio
    luma = _luma(on_vulkan)
    assert luma.shape == (3, 48, 64)
    # Vulkan (fp16 storage) and the CPU (fp32) give the same picture, up to coding noise.
    assert float(np.abs(luma - _luma(on_cpu)).mean()) < 0.01
