"""The engine on a GPU: CUDA (NVDEC) decoding, the model on CUDA, and the software fallback."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np
import pytest
from av.codec.hwaccel import hwdevices_available

from tests.clips import make_clip
from upres.domain.media import EncodeSettings, MediaLimits
from upres.domain.tasks import Factor
from upres.models.registry import get_model
from upres.pipeline.engine import upscale_video
from upres.pipeline.upscale import InterpolationUpscaler, ModelUpscaler
from upres.pipeline.video_run import VideoOptions, VideoResult

pytestmark = pytest.mark.gpu

LOSSLESS = EncodeSettings(preset="ultrafast", crf=0)


def _luma(path: Path) -> np.ndarray:
    with av.open(str(path)) as container:
        planes = [f.to_ndarray()[: f.height] for f in container.decode(video=0)]
    return np.stack(planes).astype(np.float64)


def _identity(source: Path, destination: Path, *, hardware: bool) -> VideoResult:
    return upscale_video(
        source=source,
        destination=destination,
        upscaler=InterpolationUpscaler(Factor.ENHANCE),
        options=VideoOptions(encode=LOSSLESS, limits=MediaLimits(), hardware_decode=hardware),
    )


@pytest.mark.skipif("cuda" not in hwdevices_available(), reason="FFmpeg built without CUDA")
def test_cuda_decoding_matches_software_decoding(tmp_path: Path) -> None:
    # NVDEC needs frames of at least 144x144 or so; use a common size.
    source = make_clip(tmp_path / "in.mp4", width=320, height=240, frames=24, color="bt709")
    hardware = _identity(source, tmp_path / "hw.mp4", hardware=True)
    software = _identity(source, tmp_path / "sw.mp4", hardware=False)
    assert hardware.hardware_decoded
    assert not software.hardware_decoded
    assert hardware.frames == software.frames == 24
    assert np.abs(_luma(tmp_path / "hw.mp4") - _luma(tmp_path / "sw.mp4")).mean() < 0.5


def test_a_stream_nvdec_cannot_decode_falls_back_to_software(tmp_path: Path) -> None:
    # NVDEC has no H.264 4:4:4 profile: FFmpeg (or upres) must decode it in software.
    source = make_clip(tmp_path / "in.mp4", width=320, height=240, frames=12, pix_fmt="yuv444p")
    result = _identity(source, tmp_path / "out.mp4", hardware=True)
    assert result.frames == 12
    assert np.abs(_luma(tmp_path / "out.mp4") - _luma(source)).mean() < 0.5


@pytest.mark.parametrize("factor", [Factor.X2, Factor.X4])
def test_model_on_cuda_end_to_end(tmp_path: Path, factor: Factor) -> None:
    source = make_clip(tmp_path / "in.mp4", width=320, height=240, frames=24)
    upscaler = ModelUpscaler(get_model("realesr-animevideov3"), factor, device="cuda")
    result = upscale_video(
        source=source,
        destination=tmp_path / "out.mp4",
        upscaler=upscaler,
        options=VideoOptions(encode=EncodeSettings(), limits=MediaLimits()),
    )
    assert (result.width, result.height, result.frames) == (320 * factor, 240 * factor, 24)
    with av.open(str(tmp_path / "out.mp4")) as container:
        assert container.streams.audio
        assert sum(1 for _ in container.decode(video=0)) == 24
