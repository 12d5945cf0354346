"""Previews of running tasks: thumbnails of upscaled frames, throttled, as JPEG."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from tests.clips import make_clip
from upres.domain.media import EncodeSettings, MediaLimits
from upres.domain.tasks import Factor
from upres.pipeline.engine import upscale_video
from upres.pipeline.preview import FramePreview, thumbnail
from upres.pipeline.upscale import InterpolationUpscaler
from upres.pipeline.video_run import VideoHooks, VideoOptions


class _Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_a_thumbnail_is_8_bit_and_at_most_the_width() -> None:
    wide = torch.full((500, 1000, 3), 200, dtype=torch.uint8)
    deep = torch.full((50, 100, 3), 65535, dtype=torch.uint16)

    small = thumbnail(wide, 480)
    kept = thumbnail(deep, 480)

    assert (small.shape, small.dtype) == ((240, 480, 3), torch.uint8)
    assert int(small.min()) == int(small.max()) == 200
    assert kept.shape == (50, 100, 3)
    assert int(kept.min()) == 255


def test_previews_are_throttled_and_taken_once_as_jpeg() -> None:
    clock = _Clock()
    preview = FramePreview(every_s=3, width=64, clock=clock)
    preview.offer(torch.zeros((48, 96, 3), dtype=torch.uint8))
    preview.offer(torch.full((48, 96, 3), 255, dtype=torch.uint8))  # too soon: ignored

    jpeg = preview.take_jpeg()

    assert jpeg is not None
    assert jpeg[:2] == b"\xff\xd8"
    image = np.asarray(Image.open(io.BytesIO(jpeg)).convert("RGB"))
    assert image.shape == (32, 64, 3)
    assert int(image.max()) < 16  # the first (black) frame, not the second
    assert preview.take_jpeg() is None
    clock.now += 3
    preview.offer(torch.full((48, 96, 3), 255, dtype=torch.uint8))
    assert preview.take_jpeg() is not None


def test_the_pipeline_shows_each_batch_last_upscaled_frame(tmp_path: Path) -> None:
    source = make_clip(tmp_path / "in.mp4", frames=6, audio=False)
    seen: list[torch.Tensor] = []

    upscale_video(
        source=source,
        destination=tmp_path / "out.mp4",
        upscaler=InterpolationUpscaler(Factor.X2),
        options=VideoOptions(encode=EncodeSettings(preset="ultrafast"), limits=MediaLimits()),
        hooks=VideoHooks(on_frame=lambda frame: seen.append(frame.clone())),
    )

    assert len(seen) == 6  # batches of one frame on the CPU
    assert {tuple(frame.shape) for frame in seen} == {(96, 128, 3)}
