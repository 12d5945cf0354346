"""``upres upscale`` as a process: what reaches its stderr, and stop signals at any moment."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import av
import pytest

from tests.clips import make_clip

FAST_MODEL = ["--model", "realesr-animevideov3", "--device", "cpu"]


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_clip(tmp_path_factory.mktemp("cli") / "in.mp4", frames=6, fps=6)


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
