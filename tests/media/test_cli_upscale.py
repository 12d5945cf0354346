"""``upres upscale``: real clips, the real fast model, exit codes and messages (as a process,
with stop signals: tests/process/test_cli_signals.py)."""

from __future__ import annotations

import io
import sys
from pathlib import Path

import av
import pytest
import torch
from typer.testing import CliRunner

from tests.clips import make_clip, write_faststart, write_not_a_video, write_truncated
from upres.cli import build_app
from upres.cli.upscale import plain_line, progress_reporter
from upres.pipeline.video_run import Progress

FAST_MODEL = ["--model", "realesr-animevideov3", "--device", "cpu"]


def _invoke(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(build_app(), ["upscale", *args])
    return result.exit_code, result.stdout, result.stderr


def _facts(path: Path) -> tuple[int, int, int, bool, str]:
    with av.open(str(path)) as container:
        video = container.streams.video[0]
        frames = sum(1 for _ in container.decode(video))
        return video.width, video.height, frames, bool(container.streams.audio), video.codec.name


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_clip(tmp_path_factory.mktemp("cli") / "in.mp4", frames=6, fps=6)


@pytest.mark.parametrize("factor", [1, 2, 4])
def test_upscale_at_each_factor(tmp_path: Path, clip: Path, factor: int) -> None:
    output = tmp_path / "out.mp4"
    code, stdout, stderr = _invoke(str(clip), str(output), "--factor", str(factor), *FAST_MODEL)
    assert code == 0, stderr
    assert _facts(output) == (64 * factor, 48 * factor, 6, True, "h264")
    assert f"wrote {output}" in stdout
    # Not a terminal: progress comes as plain lines on stderr.
    assert "frames 6/6 (100%)" in stderr


@pytest.mark.parametrize("factor", [1, 2, 4])
def test_odd_sizes_are_exactly_factor_times_the_input(tmp_path: Path, factor: int) -> None:
    source = make_clip(tmp_path / "in.mp4", width=75, height=49, frames=2, pix_fmt="yuv444p")
    output = tmp_path / "out.mp4"
    code, _, stderr = _invoke(str(source), str(output), "--factor", str(factor), *FAST_MODEL)
    assert code == 0, stderr
    assert _facts(output)[:3] == (75 * factor, 49 * factor, 2)


def test_codec_and_crf_options(tmp_path: Path, clip: Path) -> None:
    output = tmp_path / "out.mp4"
    code, _, stderr = _invoke(
        str(clip), str(output), "--factor", "1", "--codec", "h265", "--crf", "30", *FAST_MODEL
    )
    assert code == 0, stderr
    assert _facts(output)[-1] == "hevc"


@pytest.mark.parametrize(("preset", "cabac"), [("ultrafast", b"cabac=0"), ("medium", b"cabac=1")])
def test_preset_reaches_the_encoder(tmp_path: Path, clip: Path, preset: str, cabac: bytes) -> None:
    output = tmp_path / "out.mp4"
    code, _, stderr = _invoke(
        str(clip), str(output), "--factor", "1", "--preset", preset, *FAST_MODEL
    )
    assert code == 0, stderr
    # x264 writes its options into the stream; ultrafast is the only preset without CABAC.
    assert cabac in output.read_bytes()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--model", "no-such-model"], "unknown model"),
        ([*FAST_MODEL, "--denoise", "1"], "realesr-animevideov3 has no denoise level 1"),
        (["--preset", "warp"], "h264 has no preset 'warp'"),
        (["--codec", "av1", "--preset", "medium"], "av1 has no preset 'medium'"),
        (["--crf", "60"], "h264 crf must be 0..51"),
        pytest.param(
            ["--device", "cuda"],
            "cuda is not available",
            marks=pytest.mark.skipif(torch.cuda.is_available(), reason="CUDA is available"),
        ),
    ],
    ids=[
        "unknown-model",
        "no-denoise-levels",
        "unknown-preset",
        "preset-of-another-codec",
        "crf-range",
        "no-cuda",
    ],
)
def test_user_errors_are_one_line_without_traceback(
    tmp_path: Path, clip: Path, args: list[str], message: str
) -> None:
    output = tmp_path / "out.mp4"
    code, _, stderr = _invoke(str(clip), str(output), "--factor", "2", *args)
    assert code == 1
    assert stderr.startswith("error: ")
    assert stderr.count("\n") == 1
    assert message in stderr.lower()
    assert not output.exists()


def test_denoise_takes_a_level_the_network_offers(tmp_path: Path, clip: Path) -> None:
    output = tmp_path / "out.mp4"
    cugan = ["--model", "realcugan-se-x2", "--device", "cpu", "--no-temporal"]
    refused = _invoke(str(clip), str(output), *FAST_MODEL, "--denoise", "1")
    assert refused[0] == 1
    assert refused[2] == (
        "error: model realesr-animevideov3 has no denoise level 1; its levels: 0\n"
    )
    code, _, stderr = _invoke(str(clip), str(output), *cugan, "--factor", "2", "--denoise", "2")
    assert code == 0, stderr
    assert _facts(output)[:3] == (128, 96, 6)


def test_bad_input_exits_1_and_writes_nothing(tmp_path: Path) -> None:
    source = write_not_a_video(tmp_path / "in.mp4")
    code, _, stderr = _invoke(str(source), str(tmp_path / "out.mp4"), *FAST_MODEL)
    assert code == 1
    assert stderr == "error: The file is not a video that upres can read.\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.mp4"]


def test_a_truncated_input_exits_1_and_writes_nothing(tmp_path: Path, clip: Path) -> None:
    source = write_truncated(write_faststart(clip, tmp_path / "whole.mp4"), tmp_path / "in.mp4")
    code, stdout, stderr = _invoke(str(source), str(tmp_path / "out.mp4"), *FAST_MODEL)
    assert (code, stdout) == (1, "")
    assert stderr.startswith("error: The video is truncated: its video stream #0 (3 of its 6")
    assert stderr.count("\n") == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.mp4", "whole.mp4"]


@pytest.mark.parametrize(
    ("output", "message"),
    [
        ("missing/out.mp4", "the directory {tmp}/missing does not exist"),
        ("out.avi", "the output name must end in one of .mp4, .m4v, .mov, .mkv"),
        ("/sys/out.mp4", "/sys is not writable (Permission denied)"),
    ],
    ids=["missing-directory", "unknown-container", "not-writable"],
)
def test_the_output_path_is_checked_before_any_work(
    tmp_path: Path, clip: Path, output: str, message: str
) -> None:
    (tmp_path / "folder").mkdir()
    target = tmp_path / output
    # An unknown model would fail as soon as work starts: the path is checked first.
    code, _, stderr = _invoke(str(clip), str(target), "--model", "no-such-model")
    assert code == 1
    assert stderr == f"error: Cannot write {target}: {message.format(tmp=tmp_path)}.\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["folder"]


def test_same_input_and_output_is_refused(clip: Path) -> None:
    code, _, stderr = _invoke(str(clip), str(clip), *FAST_MODEL)
    assert code == 1
    assert "different file" in stderr


def test_factor_must_be_1_2_or_4(tmp_path: Path, clip: Path) -> None:
    code, _, _ = _invoke(str(clip), str(tmp_path / "out.mp4"), "--factor", "3")
    assert code == 2


def test_plain_progress_line() -> None:
    line = plain_line(Progress(frames_done=12, frames_total=48, elapsed_s=4.0, fps=3.0))
    assert line == "frames 12/48 (25%) 3.0 fps ETA 12s"
    unknown = plain_line(Progress(frames_done=5, frames_total=None, elapsed_s=1.0, fps=5.0))
    assert unknown == "frames 5 5.0 fps"


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_terminal_progress_is_a_bar_with_frames_fps_and_eta(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    terminal = _Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    with progress_reporter() as report:
        report(Progress(frames_done=12, frames_total=48, elapsed_s=4.0, fps=3.0))
        report(Progress(frames_done=24, frames_total=48, elapsed_s=8.0, fps=3.0))
    shown = terminal.getvalue()
    assert "24/48" in shown
    assert "3.0 fps" in shown
    assert "ETA" in shown
