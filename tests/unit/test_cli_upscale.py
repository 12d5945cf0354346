"""``upres upscale``: real clips, the real fast model, exit codes, messages and Ctrl-C."""

from __future__ import annotations

import io
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import av
import pytest
import torch
from typer.testing import CliRunner

from tests.clips import make_clip, write_faststart, write_not_a_video, write_truncated
from upres.cli import build_app
from upres.cli.upscale import plain_line, progress_reporter
from upres.pipeline.engine import Progress

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


@pytest.mark.slow
@pytest.mark.parametrize("factor", [1, 2, 4])
def test_upscale_with_the_default_model(tmp_path: Path, factor: int) -> None:
    """No --model: the registry's default for the factor, on the CPU, on a tiny clip."""
    source = make_clip(tmp_path / "in.mp4", width=24, height=16, frames=3, fps=6)
    output = tmp_path / "out.mp4"
    code, _, stderr = _invoke(str(source), str(output), "--factor", str(factor), "--device", "cpu")
    assert code == 0, stderr
    assert _facts(output)[:3] == (24 * factor, 16 * factor, 3)


def test_codec_and_crf_options(tmp_path: Path, clip: Path) -> None:
    output = tmp_path / "out.mp4"
    code, _, stderr = _invoke(
        str(clip), str(output), "--factor", "1", "--codec", "h265", "--crf", "30", *FAST_MODEL
    )
    assert code == 0, stderr
    assert _facts(output)[-1] == "hevc"


@pytest.mark.slow
def test_av1_prints_no_encoder_banner(tmp_path: Path, clip: Path) -> None:
    command = [sys.executable, "-c", "from upres.cli import main; main()", "upscale"]
    env = {k: v for k, v in os.environ.items() if k != "SVT_LOG"}
    args = [str(clip), str(tmp_path / "out.mp4"), "--factor", "1", "--codec", "av1"]
    done = subprocess.run(
        [*command, *args, *FAST_MODEL],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "Svt[" not in done.stderr
    with av.open(str(tmp_path / "out.mp4")) as container:
        assert container.streams.video[0].codec_context.codec.id == av.Codec("av1").id


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
        (["--preset", "warp"], "h264 has no preset 'warp'"),
        (["--codec", "av1", "--preset", "medium"], "av1 has no preset 'medium'"),
        (["--crf", "60"], "h264 crf must be 0..51"),
        pytest.param(
            ["--device", "cuda"],
            "cuda is not available",
            marks=pytest.mark.skipif(torch.cuda.is_available(), reason="CUDA is available"),
        ),
    ],
    ids=["unknown-model", "unknown-preset", "preset-of-another-codec", "crf-range", "no-cuda"],
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
        ("folder", "it is a directory"),
        ("out.avi", "the output name must end in one of .mp4, .m4v, .mov, .mkv"),
        ("/sys/out.mp4", "/sys is not writable (Permission denied)"),
    ],
    ids=["missing-directory", "a-directory", "unknown-container", "not-writable"],
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


def _start(source: Path, output: Path) -> subprocess.Popen[str]:
    command = [sys.executable, "-c", "from upres.cli import main; main()", "upscale"]
    return subprocess.Popen(
        [*command, str(source), str(output), "--factor", "4", *FAST_MODEL],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _wait_until_handled(pid: int, signum: int) -> None:
    """Until the process handles ``signum`` (Linux lists caught signals in /proc): upres
    takes over the stop signals as soon as its main() runs, before the slow imports."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        status = Path(f"/proc/{pid}/status").read_text()
        caught = int(
            next(line for line in status.splitlines() if line.startswith("SigCgt:"))[7:], 16
        )
        if caught >> (signum - 1) & 1:
            return
        time.sleep(0.01)
    raise AssertionError(f"process {pid} never handled signal {signum}")


STOP_SIGNALS = [(signal.SIGINT, 130), (signal.SIGTERM, 143), (signal.SIGHUP, 129)]


@pytest.mark.slow
@pytest.mark.parametrize(("signum", "status"), STOP_SIGNALS, ids=["INT", "TERM", "HUP"])
def test_a_stop_signal_mid_run_cancels_cleanly(tmp_path: Path, signum: int, status: int) -> None:
    source = make_clip(tmp_path / "in.mp4", frames=240, fps=24)
    child = _start(source, tmp_path / "out.mp4")
    assert child.stderr is not None
    first = child.stderr.readline()
    assert first.startswith("frames "), first
    child.send_signal(signum)
    _, rest = child.communicate(timeout=120)
    assert child.returncode == status, rest
    assert "cancelled" in rest
    assert "Traceback" not in rest
    # No output, and no hidden .part file beside it.
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.mp4"]


@pytest.mark.slow
@pytest.mark.parametrize(("signum", "status"), STOP_SIGNALS, ids=["INT", "TERM", "HUP"])
def test_a_stop_signal_while_starting_exits_quietly(
    tmp_path: Path, signum: int, status: int
) -> None:
    """Importing torch and loading the model take seconds: a signal then is no crash."""
    source = make_clip(tmp_path / "in.mp4", frames=24, fps=24)
    child = _start(source, tmp_path / "out.mp4")
    _wait_until_handled(child.pid, signal.SIGTERM)
    child.send_signal(signum)
    _, stderr = child.communicate(timeout=120)
    assert child.returncode == status, stderr
    assert "Traceback" not in stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.mp4"]


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
