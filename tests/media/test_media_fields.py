"""Interlaced inputs: field order found, bwdif before the model, progressive output."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import av
import numpy as np
import pytest
from testkit.media import combing
from typer.testing import CliRunner

from tests.clips import make_clip
from tests.clips_media import make_interlaced_clip, make_telecined_clip
from upres.cli import build_app
from upres.domain.media import EncodeSettings, MediaLimits
from upres.domain.tasks import Factor
from upres.pipeline.engine import upscale_video
from upres.pipeline.fields import FieldScan, scan_fields
from upres.pipeline.upscale import InterpolationUpscaler
from upres.pipeline.video_run import VideoOptions, VideoResult

FAST_MODEL = ["--model", "realesr-animevideov3", "--device", "cpu"]
# ``combing`` of the woven clips is about 2 (coded as fields); a progressive
# encode of the same scene scores 0.1-0.2, the bwdif output 0.3-0.4 (its
# interpolated lines are not perfect at the disc's edge).
COMBED = 1.5
CLEAN = 0.5
_PROGRESSIVE_ORDERS = (0, 1)  # AVFieldOrder: unknown or progressive
Order = Literal["tff", "bff"]


def _identity(source: Path, output: Path, *, double_rate: bool = False) -> VideoResult:
    return upscale_video(
        source=source,
        destination=output,
        upscaler=InterpolationUpscaler(Factor.ENHANCE),
        options=VideoOptions(
            encode=EncodeSettings(preset="ultrafast", crf=4),
            limits=MediaLimits(),
            double_rate=double_rate,
        ),
    )


def _frames(path: Path) -> tuple[list[np.ndarray], list[bool], int, float]:
    """Luma planes, interlaced flags, the stream's field order, the duration in seconds."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        frames = list(container.decode(stream))
        seconds = float((frames[-1].pts + frames[-1].duration) * stream.time_base)
        lumas = [f.to_ndarray(format="gray") for f in frames]
        return (
            lumas,
            [f.interlaced_frame for f in frames],
            stream.codec_context.field_order,
            seconds,
        )


def _mean_combing(lumas: list[np.ndarray]) -> float:
    return float(np.mean([combing(y) for y in lumas]))


@pytest.mark.parametrize("container", ["mp4", "mpegts"])
@pytest.mark.parametrize("order", ["tff", "bff"])
def test_interlaced_input_is_deinterlaced_and_flagged_progressive(
    tmp_path: Path, order: Order, container: str
) -> None:
    source = make_interlaced_clip(tmp_path / f"in.{container}", order=order, container=container)
    before, flags, _, seconds = _frames(source)
    assert all(flags)
    assert _mean_combing(before) > COMBED
    output = tmp_path / "out.mp4"
    result = _identity(source, output)
    assert result.fields == FieldScan(
        order=order, flagged=order, combed=16, frames=16, telecined=False
    )
    assert result.notes == (
        f"the source is interlaced ({order.upper()}): deinterlaced (bwdif, one frame per frame)",
    )
    after, flags, field_order, out_seconds = _frames(output)
    assert len(after) == len(before) == result.frames
    assert not any(flags)
    assert field_order in _PROGRESSIVE_ORDERS
    assert _mean_combing(after) < CLEAN
    assert out_seconds == pytest.approx(seconds, abs=1e-3)


def test_double_rate_gives_one_frame_per_field_over_the_same_time(tmp_path: Path) -> None:
    source = make_interlaced_clip(tmp_path / "in.mp4", frames=8)
    output = tmp_path / "out.mp4"
    code, _, stderr = _invoke(str(source), str(output), "--factor", "2", "--double-rate")
    assert code == 0, stderr
    assert "note: the source is interlaced (TFF): deinterlaced (bwdif, one frame per field)" in (
        stderr
    )
    after, flags, _, seconds = _frames(output)
    assert (len(after), seconds) == (16, pytest.approx(8 / 25, abs=1e-3))
    assert after[0].shape == (128, 192)
    assert not any(flags)
    assert _mean_combing(after) < CLEAN


def test_combed_pictures_flagged_progressive_are_found_by_their_content(tmp_path: Path) -> None:
    source = make_interlaced_clip(tmp_path / "in.mp4", order="bff", flagged=False)
    assert scan_fields(source).flagged == "progressive"
    result = _identity(source, tmp_path / "out.mp4")
    assert result.fields.order == "bff"
    assert "its flags say progressive; the pictures say bff" in result.notes
    assert _mean_combing(_frames(tmp_path / "out.mp4")[0]) < CLEAN


def test_telecined_film_is_detected_and_reported(tmp_path: Path) -> None:
    source = make_telecined_clip(tmp_path / "in.mp4")
    result = _identity(source, tmp_path / "out.mp4")
    assert result.fields.telecined
    assert result.frames == 30
    assert any("telecined film (3:2 pulldown)" in note for note in result.notes)


def test_plain_interlaced_video_is_not_called_telecined(tmp_path: Path) -> None:
    scan = scan_fields(make_interlaced_clip(tmp_path / "in.mp4", frames=30))
    assert (scan.order, scan.telecined) == ("tff", False)


def test_noisy_progressive_video_stays_progressive(tmp_path: Path) -> None:
    """Per-pixel noise looks combed to idet, but of both field orders alike."""
    source = make_clip(tmp_path / "in.mp4", width=160, height=120, frames=24)
    assert scan_fields(source).order == "progressive"
    result = _identity(source, tmp_path / "out.mp4")
    assert result.notes == ()


def _invoke(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(build_app(), ["upscale", *args, *FAST_MODEL])
    return result.exit_code, result.stdout, result.stderr
