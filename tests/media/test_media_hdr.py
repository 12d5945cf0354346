"""HDR and high bit depth end to end: 10 bits kept, HDR10 metadata carried, the codec chosen."""

from __future__ import annotations

from dataclasses import replace
from fractions import Fraction
from pathlib import Path
from typing import Literal

import av
import pytest
import torch
from testkit.media import HLG, PQ
from typer.testing import CliRunner

from tests.clips import probed_info
from tests.clips_media import LIGHT, MASTERING, make_hdr_clip
from upres.cli import build_app
from upres.domain.media import (
    ColorInfo,
    EncodeSettings,
    HdrInfo,
    MasteringDisplay,
    MediaLimits,
    VideoCodec,
)
from upres.domain.tasks import Factor
from upres.inputs.hdr_metadata import hdr_info, parse_mastering
from upres.inputs.probe import probe
from upres.pipeline.colorimetry import conversion_for
from upres.pipeline.decode import DecodeOptions, TimedBatch, decode
from upres.pipeline.engine import upscale_video
from upres.pipeline.hdr import choose_codec, x265_params
from upres.pipeline.output_plan import plan_output
from upres.pipeline.upscale import InterpolationUpscaler
from upres.pipeline.video_run import VideoOptions, VideoResult

FAST_MODEL = ["--model", "realesr-animevideov3", "--device", "cpu"]
FAST = EncodeSettings(preset="ultrafast")
# AV1 stores chromaticity in 1/65536 (some in 1/16384) and black level in 1/16384 cd/m2.
AV1_CHROMA_STEP = Fraction(1, 16384)
AV1_BLACK_STEP = Fraction(1, 16384)


def _identity(source: Path, output: Path, encode: EncodeSettings = FAST) -> VideoResult:
    return upscale_video(
        source=source,
        destination=output,
        upscaler=InterpolationUpscaler(Factor.X2),
        options=VideoOptions(encode=encode, limits=MediaLimits()),
    )


def _first_frame_hdr(path: Path) -> HdrInfo:
    with av.open(str(path)) as container:
        return hdr_info(next(container.decode(video=0)))


def _tags(path: Path) -> tuple[str, int, int, int, int]:
    info = probe(path, limits=MediaLimits())
    color = info.color
    return info.pix_fmt, info.bit_depth, color.transfer, color.primaries, color.matrix


@pytest.fixture(scope="module")
def hdr10(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_hdr_clip(tmp_path_factory.mktemp("hdr") / "hdr10.mp4")


def test_the_corpus_clip_carries_both_hdr10_blocks(hdr10: Path) -> None:
    assert _first_frame_hdr(hdr10) == HdrInfo(mastering=MASTERING, light=LIGHT)


def test_hdr10_with_the_default_codec_becomes_h265_10_bit_with_its_metadata(
    tmp_path: Path, hdr10: Path
) -> None:
    output = tmp_path / "out.mp4"
    code, stdout, stderr = _invoke(str(hdr10), str(output), "--factor", "2", *FAST_MODEL)
    assert code == 0, stderr
    assert probe(output, limits=MediaLimits()).codec == "hevc"
    assert _tags(output) == ("yuv420p10le", 10, PQ, 9, 9)
    assert _first_frame_hdr(output) == HdrInfo(mastering=MASTERING, light=LIGHT)
    assert "note: the source is HDR10 (PQ) 10-bit: writing h265 10-bit instead of h264" in stderr
    assert f"wrote {output}" in stdout


def test_hdr10_to_av1_keeps_the_metadata_at_av1_precision(tmp_path: Path, hdr10: Path) -> None:
    output = tmp_path / "out.mp4"
    result = _identity(hdr10, output, EncodeSettings(codec="av1", preset="12"))
    assert (result.codec, result.notes) == ("av1", ())
    assert _tags(output) == ("yuv420p10le", 10, PQ, 9, 9)
    carried = _first_frame_hdr(output)
    assert carried.light == LIGHT
    assert carried.mastering is not None
    _assert_close(carried.mastering, MASTERING)


def _assert_close(got: MasteringDisplay, want: MasteringDisplay) -> None:
    for name in ("red", "green", "blue", "white_point"):
        for g, w in zip(getattr(got, name), getattr(want, name), strict=True):
            assert abs(g - w) <= AV1_CHROMA_STEP, name
    assert got.max_luminance == want.max_luminance
    assert abs(got.min_luminance - want.min_luminance) <= AV1_BLACK_STEP


def test_hlg_stays_hlg_10_bit(tmp_path: Path) -> None:
    source = make_hdr_clip(tmp_path / "hlg.mp4", transfer=HLG, metadata=False)
    output = tmp_path / "out.mp4"
    result = _identity(source, output)
    assert result.codec == "h265"
    assert result.notes == ("the source is HLG 10-bit: writing h265 10-bit instead of h264",)
    assert _tags(output) == ("yuv420p10le", 10, HLG, 9, 9)
    assert _first_frame_hdr(output) == HdrInfo()


@pytest.mark.parametrize(
    ("codec", "name"), [("libx264", "h264"), ("libsvtav1", "av1")], ids=["h264", "av1"]
)
def test_ten_bit_sdr_input_decodes_deep_and_is_written_10_bit(
    tmp_path: Path, codec: Literal["libx264", "libsvtav1"], name: str
) -> None:
    source = make_hdr_clip(tmp_path / "in.mp4", codec=codec, transfer=1, metadata=False)
    info = probe(source, limits=MediaLimits())
    assert (info.codec, info.bit_depth) == (name, 10)
    options = DecodeOptions.for_video(info)
    first = next(i for i in decode(source, options=options) if isinstance(i, TimedBatch))
    pixels = first.frames.pixels
    # Never through 8 bits: values use the 16-bit range between 8-bit steps.
    assert pixels.dtype == torch.uint16
    assert bool((pixels.numpy() % 257 != 0).any())
    output = tmp_path / "out.mp4"
    result = _identity(source, output)
    assert result.notes == ("the source is 10-bit: writing h265 10-bit instead of h264",)
    assert _tags(output) == ("yuv420p10le", 10, 1, 1, 1)


def test_a_chosen_h264_is_kept_8_bit_with_a_warning(tmp_path: Path, hdr10: Path) -> None:
    output = tmp_path / "out.mp4"
    result = _identity(hdr10, output, EncodeSettings(codec="h264", preset="ultrafast"))
    assert result.notes == ("the source is HDR10 (PQ) 10-bit; h264 output is 8-bit",)
    assert _tags(output)[:2] == ("yuv420p", 8)


def _invoke(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(build_app(), ["upscale", *args])
    return result.exit_code, result.stdout, result.stderr


PQ_INFO = replace(
    probed_info(), bit_depth=10, color=ColorInfo(color_range=1, primaries=9, transfer=PQ, matrix=9)
)


@pytest.mark.parametrize(
    ("chosen", "deep", "codec"),
    [(None, False, "h264"), (None, True, "h265"), ("av1", True, "av1"), ("h264", True, "h264")],
)
def test_choose_codec(chosen: VideoCodec | None, deep: bool, codec: str) -> None:
    info = PQ_INFO if deep else probed_info()
    assert choose_codec(EncodeSettings(codec=chosen), info)[0] == codec


def test_dolby_vision_keeps_the_base_layer_and_says_so() -> None:
    info = replace(PQ_INFO, hdr=HdrInfo(mastering=MASTERING, dolby_vision=True))
    conversion = conversion_for(info.color, pix_fmt="yuv420p10le", height=info.height)
    plan = plan_output(info, factor=2, conversion=conversion, settings=EncodeSettings())
    assert plan.pix_fmt == "yuv420p10le"
    assert any("Dolby Vision" in note and "HDR10 base layer" in note for note in plan.notes)


def test_a_dolby_vision_sample_entry_marks_the_source(hdr10: Path) -> None:
    with av.open(str(hdr10)) as container:
        frame = next(container.decode(video=0))
    assert hdr_info(frame, codec_tag="dvh1").dolby_vision
    assert not hdr_info(frame, codec_tag="hvc1").dolby_vision


def test_x265_gets_the_mastering_display_in_its_units() -> None:
    assert x265_params(HdrInfo(mastering=MASTERING, light=LIGHT)) == [
        "master-display=G(13250,34500)B(7500,3000)R(34000,16000)WP(15635,16450)L(10000000,1)",
        "max-cll=1000,400",
        "hdr10=1",
        "repeat-headers=1",
    ]
    assert x265_params(HdrInfo()) == []


def test_malformed_side_data_is_ignored() -> None:
    assert parse_mastering(b"\x00" * 88) is None
    assert parse_mastering(b"\x01" * 12) is None
