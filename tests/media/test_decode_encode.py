"""decode and encode: pixels, colour, timing and the streams that must survive a round trip."""

from __future__ import annotations

import os
from dataclasses import replace
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
import torch

from tests.clips import frame_pixels, make_clip
from upres.domain.media import EncodeSettings, MediaLimits, VideoCodec
from upres.domain.tasks import Factor
from upres.inputs.probe import probe
from upres.pipeline.decode import DecodeOptions, DecodeSummary, TimedBatch, decode
from upres.pipeline.encoder_process import demote_realtime_threads
from upres.pipeline.engine import upscale_video
from upres.pipeline.output_plan import keeping_up
from upres.pipeline.upscale import InterpolationUpscaler
from upres.pipeline.video_run import VideoOptions, VideoResult

FAST = EncodeSettings(preset="ultrafast")


def _options(source: Path, batch_size: int = 5) -> DecodeOptions:
    info = probe(source, limits=MediaLimits())
    return DecodeOptions.for_video(info, batch_size=batch_size)


def _identity(
    source: Path, destination: Path, encode: EncodeSettings = FAST, factor: Factor = Factor.ENHANCE
) -> VideoResult:
    return upscale_video(
        source=source,
        destination=destination,
        upscaler=InterpolationUpscaler(factor),
        options=VideoOptions(encode=encode, limits=MediaLimits()),
    )


def _luma(path: Path) -> np.ndarray:
    """The Y planes of every frame, as stored (8 or 10 bit codes)."""
    with av.open(str(path)) as container:
        planes = [f.to_ndarray()[: f.height] for f in container.decode(video=0)]
    return np.stack(planes).astype(np.float64)


def test_decode_yields_batches_with_timestamps_then_a_summary(tmp_path: Path) -> None:
    source = make_clip(tmp_path / "clip.mp4", frames=12)
    items = list(decode(source, options=_options(source, batch_size=5)))
    batches = [i for i in items if isinstance(i, TimedBatch)]
    assert [b.frames.count for b in batches] == [5, 5, 2]
    assert [b.frames.first_index for b in batches] == [0, 5, 10]
    pixels = batches[0].frames.pixels
    assert (pixels.shape, pixels.dtype) == ((5, 48, 64, 3), torch.uint8)
    pts = [p for b in batches for p in b.frames.pts]
    durations = [d for b in batches for d in b.durations]
    assert pts == sorted(pts)
    assert len(set(durations)) == 1
    assert items[-1] == DecodeSummary(
        frames=12, packets=12, skipped_packets=0, concealed_frames=0, hardware=False
    )


def test_decode_gives_rgb_close_to_what_was_encoded(tmp_path: Path) -> None:
    source = make_clip(tmp_path / "clip.mp4", color="bt709")
    first = next(i for i in decode(source, options=_options(source)) if isinstance(i, TimedBatch))
    decoded = first.frames.pixels[0].numpy().astype(np.float64)
    original = frame_pixels(0, 64, 48).astype(np.float64)
    # 4:2:0 chroma and CRF 16 blur colour edges; a wrong matrix would shift everything.
    assert abs(decoded.mean() - original.mean()) < 2.0
    assert np.abs(decoded - original).mean() < 8.0


def test_ten_bit_decodes_to_full_range_uint16(tmp_path: Path) -> None:
    source = make_clip(tmp_path / "10.mp4", codec="libx265", pix_fmt="yuv420p10le")
    first = next(i for i in decode(source, options=_options(source)) if isinstance(i, TimedBatch))
    pixels = first.frames.pixels
    assert pixels.dtype == torch.uint16
    assert int(pixels.numpy().max()) > 60_000


def test_bt709_round_trip_keeps_luma_and_tags(tmp_path: Path) -> None:
    source = make_clip(tmp_path / "709.mp4", color="bt709")
    output = tmp_path / "out.mp4"
    _identity(source, output, EncodeSettings(preset="ultrafast", crf=0))
    error = np.abs(_luma(output) - _luma(source)).mean()
    assert error < 0.5
    with av.open(str(output)) as container:
        ctx = container.streams.video[0].codec_context
        assert (ctx.colorspace, ctx.color_primaries, ctx.color_trc, ctx.color_range) == (1, 1, 1, 1)


def test_bt601_conversion_of_bt709_would_be_caught(tmp_path: Path) -> None:
    """The luma check above can fail: PyAV's default (BT.601) path shifts luma visibly."""
    source = make_clip(tmp_path / "709.mp4", color="bt709")
    with av.open(str(source)) as container:
        frame = next(container.decode(video=0))
    y = frame.to_ndarray()[: frame.height].astype(np.float64)
    rgb = frame.to_ndarray(format="rgb24", src_colorspace="ITU601", dst_colorspace="ITU601")
    back = av.VideoFrame.from_ndarray(rgb, format="rgb24").reformat(
        format="yuv420p", dst_colorspace="ITU709", dst_color_range="MPEG"
    )
    assert np.abs(back.to_ndarray()[: frame.height].astype(np.float64) - y).mean() > 2.0


def test_untagged_sd_input_gets_explicit_bt601_tags(tmp_path: Path) -> None:
    source = make_clip(tmp_path / "plain.mp4")
    output = tmp_path / "out.mp4"
    _identity(source, output, EncodeSettings(preset="ultrafast", crf=0))
    assert np.abs(_luma(output) - _luma(source)).mean() < 0.5
    with av.open(str(output)) as container:
        ctx = container.streams.video[0].codec_context
        assert (ctx.colorspace, ctx.color_range) == (6, 1)


def _packets(path: Path, kind: str) -> list[tuple[bytes, int | None]]:
    with av.open(str(path)) as container:
        stream = next(s for s in container.streams if s.type == kind)
        return [(bytes(p), p.pts) for p in container.demux(stream) if p.size]


def test_audio_is_copied_bit_for_bit(tmp_path: Path) -> None:
    source = make_clip(tmp_path / "clip.mp4", frames=24)
    output = tmp_path / "out.mp4"
    _identity(source, output, factor=Factor.X2)
    source_audio = _packets(source, "audio")
    assert len(source_audio) > 10
    assert _packets(output, "audio") == source_audio


def _first_times(path: Path) -> tuple[float, float]:
    """When the first video frame and the first audio frame are shown, in seconds."""
    times = []
    for kind in ("video", "audio"):
        with av.open(str(path)) as container:
            stream = next(s for s in container.streams if s.type == kind)
            times.append(float(next(iter(container.decode(stream))).time or 0.0))
    return times[0], times[1]


def test_an_mpeg_ts_keeps_its_audio_video_offset_to_the_tick(tmp_path: Path) -> None:
    """In a .ts the video starts 21.333 ms after the audio: mp4's millisecond edit
    lists would round that; the output's 90 kHz movie timescale keeps it."""
    source = make_clip(tmp_path / "clip.ts", container="mpegts")
    output = tmp_path / "out.mp4"
    _identity(source, output)
    video, audio = _first_times(source)
    assert video - audio == pytest.approx(0.021333, abs=1e-5)
    out_video, out_audio = _first_times(output)
    assert out_video - out_audio == pytest.approx(video - audio, abs=1e-6)


def test_mov_text_subtitles_are_copied(tmp_path: Path) -> None:
    source = make_clip(tmp_path / "subs.mp4", subtitles=("hello", "world"))
    output = tmp_path / "out.mp4"
    result = _identity(source, output)
    assert result.dropped_streams == ()
    assert _packets(output, "subtitle") == _packets(source, "subtitle")


def _write_pcm_mkv(path: Path, *, second_video: bool) -> Path:
    """Matroska with H.264, 1 s of 24-bit PCM at 8 kHz, and optionally a second video stream."""
    with av.open(str(path), mode="w", format="matroska") as out:
        videos = [out.add_stream("libx264", rate=4) for _ in range(2 if second_video else 1)]
        for video in videos:
            video.width, video.height, video.pix_fmt = 64, 48, "yuv420p"
        sound = out.add_stream("pcm_s24le", rate=8000, layout="mono")
        for i in range(4):
            for video in videos:
                frame = av.VideoFrame.from_ndarray(frame_pixels(i, 64, 48), format="rgb24")
                frame.pts = i
                out.mux(video.encode(frame))
            tone = np.sin(np.arange(i * 2000, (i + 1) * 2000) / 8) * 2**30
            samples = tone.astype(np.int32)[None]
            chunk = av.AudioFrame.from_ndarray(samples, format="s32", layout="mono")
            chunk.sample_rate, chunk.pts = 8000, i * 2000
            out.mux(sound.encode(chunk))
        for video in videos:
            out.mux(video.encode(None))
        out.mux(sound.encode(None))
    return path


def test_audio_mp4_cannot_carry_is_reencoded_to_aac(tmp_path: Path) -> None:
    source = _write_pcm_mkv(tmp_path / "pcm.mkv", second_video=False)
    output = tmp_path / "out.mp4"
    result = _identity(source, output)
    assert result.dropped_streams == ()
    with av.open(str(output)) as container:
        audio = container.streams.audio[0]
        assert (audio.codec_context.name, audio.sample_rate) == ("aac", 8000)
        samples = sum(f.samples for f in container.decode(audio))
    assert samples == pytest.approx(8000, abs=2048)


def test_streams_mp4_cannot_carry_are_dropped_and_reported(tmp_path: Path) -> None:
    source = _write_pcm_mkv(tmp_path / "two.mkv", second_video=True)
    result = _identity(source, tmp_path / "out.mp4")
    assert result.dropped_streams == (
        "video stream #1 (h264): the output holds one video stream, the upscaled one",
    )


def test_rotation_and_pixel_aspect_ratio_are_kept(tmp_path: Path) -> None:
    source = make_clip(tmp_path / "rot.mp4", rotation=90, sar=Fraction(4, 3))
    output = tmp_path / "out.mp4"
    _identity(source, output, factor=Factor.X2)
    info = probe(output, limits=MediaLimits())
    assert info.rotation == 90
    assert info.sample_aspect_ratio == Fraction(4, 3)
    assert (info.width, info.height) == (128, 96)


@pytest.mark.parametrize(("codec", "name"), [("h264", "h264"), ("h265", "hevc"), ("av1", "av1")])
def test_output_codecs(tmp_path: Path, codec: VideoCodec, name: str) -> None:
    source = make_clip(tmp_path / "clip.mp4", frames=6)
    output = tmp_path / "out.mp4"
    result = _identity(source, output, EncodeSettings(codec=codec), factor=Factor.X2)
    info = probe(output, limits=MediaLimits())
    assert (info.codec, info.pix_fmt, info.frame_count) == (name, "yuv420p", 6)
    assert result.frames == 6


def _realtime_threads() -> list[int]:
    tasks = Path("/proc/self/task").iterdir()
    realtime = (os.SCHED_FIFO, os.SCHED_RR)
    return [int(t.name) for t in tasks if os.sched_getscheduler(int(t.name)) in realtime]


@pytest.mark.parametrize("codec", ["h264", "h265", "av1"])
def test_no_encoder_leaves_a_thread_real_time(tmp_path: Path, codec: VideoCodec) -> None:
    """SVT-AV1 run by root switches the calling thread to SCHED_FIFO 99; the
    pipeline's threads and torch's would inherit it and starve the machine."""
    source = make_clip(tmp_path / "clip.mp4", frames=3)
    _identity(source, tmp_path / "out.mp4", EncodeSettings(codec=codec))
    assert _realtime_threads() == []


def test_demote_realtime_threads_restores_normal_scheduling() -> None:
    try:
        os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(1))
    except PermissionError:
        pytest.skip("setting a real-time policy needs CAP_SYS_NICE")
    assert demote_realtime_threads() >= 1
    assert os.sched_getscheduler(0) == os.SCHED_OTHER
    assert _realtime_threads() == []


@pytest.mark.parametrize("codec", ["h265", "av1"])
def test_ten_bit_input_stays_ten_bit(tmp_path: Path, codec: VideoCodec) -> None:
    source = make_clip(tmp_path / "10.mp4", codec="libx265", pix_fmt="yuv420p10le", frames=6)
    output = tmp_path / "out.mp4"
    _identity(source, output, EncodeSettings(codec=codec, crf=4))
    info = probe(output, limits=MediaLimits())
    assert (info.pix_fmt, info.bit_depth) == ("yuv420p10le", 10)
    # Mean error in 10-bit codes (4 per 8-bit level): only lossy-coding noise.
    assert np.abs(_luma(output) - _luma(source)).mean() < 8.0


def test_ten_bit_input_gives_playable_8_bit_h264(tmp_path: Path) -> None:
    source = make_clip(tmp_path / "10.mp4", codec="libx265", pix_fmt="yuv420p10le", frames=6)
    output = tmp_path / "out.mp4"
    _identity(source, output, EncodeSettings(codec="h264", crf=4))
    info = probe(output, limits=MediaLimits())
    assert (info.codec, info.pix_fmt, info.bit_depth) == ("h264", "yuv420p", 8)


def test_output_is_faststart(tmp_path: Path) -> None:
    source = make_clip(tmp_path / "clip.mp4")
    output = tmp_path / "out.mp4"
    _identity(source, output)
    data = output.read_bytes()
    assert data.index(b"moov") < data.index(b"mdat")


@pytest.mark.parametrize(
    ("factor", "codec", "pix_fmt"),
    [
        (Factor.ENHANCE, "h264", "yuv444p"),
        (Factor.ENHANCE, "h265", "yuv444p"),
        (Factor.ENHANCE, "av1", "yuv420p"),
        (Factor.X2, "h264", "yuv420p"),
        (Factor.X4, "h264", "yuv420p"),
    ],
)
def test_odd_sizes_are_kept_exactly_at_every_factor(
    tmp_path: Path, factor: Factor, codec: VideoCodec, pix_fmt: str
) -> None:
    source = make_clip(tmp_path / "odd.mp4", width=75, height=49, frames=3, pix_fmt="yuv444p")
    output = tmp_path / "out.mp4"
    result = _identity(source, output, EncodeSettings(codec=codec, crf=10), factor)
    assert (result.width, result.height) == (75 * factor, 49 * factor)
    with av.open(str(output)) as container:
        frames = list(container.decode(video=0))
    assert [(f.width, f.height, f.format.name) for f in frames] == [
        (75 * factor, 49 * factor, pix_fmt)
    ] * 3
    if factor is Factor.ENHANCE:
        # Every pixel is there, the last column and row included.
        assert np.abs(_y_planes(output) - _y_planes(source)).mean() < 2.0


def _y_planes(path: Path) -> np.ndarray:
    """The 8-bit Y planes of every frame (odd 4:2:0 sizes too, which to_ndarray refuses)."""
    with av.open(str(path)) as container:
        planes = [
            np.frombuffer(f.planes[0], np.uint8).reshape(f.height, -1)[:, : f.width]
            for f in container.decode(video=0)
        ]
    return np.stack(planes).astype(np.float64)


@pytest.mark.skipif(torch.cuda.is_available(), reason="tests the no-GPU fallback")
def test_hardware_decoding_falls_back_to_software_without_a_gpu(tmp_path: Path) -> None:
    source = make_clip(tmp_path / "clip.mp4")
    options = replace(_options(source), hardware=True)
    items = list(decode(source, options=options))
    summary = items[-1]
    assert isinstance(summary, DecodeSummary)
    assert (summary.frames, summary.hardware) == (12, False)


@pytest.mark.parametrize(
    ("settings", "fast", "preset"),
    [
        (EncodeSettings(), True, "veryfast"),
        (EncodeSettings(), False, None),
        (EncodeSettings(preset="slow"), True, "slow"),
        (EncodeSettings(codec="h265"), True, None),
    ],
    ids=["fast-source", "slow-source", "chosen-preset-kept", "only-x264"],
)
def test_x264_keeps_up_with_a_fast_source(
    settings: EncodeSettings, fast: bool, preset: str | None
) -> None:
    assert keeping_up(settings, fast_source=fast).preset == preset
