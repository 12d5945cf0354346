"""``upres upscale --workers N``: chunks on worker processes, joined; stops leave nothing."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import av
import pytest
from typer.testing import CliRunner

from tests.clips import make_clip
from upres.cli import build_app
from upres.cli._chunked import default_workers
from upres.models.devices import NO_SLOTS

FAST_MODEL = ["--model", "realesr-animevideov3", "--device", "cpu"]
B_FRAMES = {"preset": "medium", "g": "6", "bf": "3"}


def _command(source: Path, output: Path, *options: str) -> list[str]:
    # A real process: the workers are spawned, which needs an importable main.
    main = [sys.executable, "-c", "from upres.cli import main; main()", "upscale"]
    return [*main, str(source), str(output), *FAST_MODEL, *options]


def _facts(path: Path) -> tuple[list[int], int | None, list[bytes]]:
    with av.open(str(path)) as container:
        video = container.streams.video[0]
        times = [int(f.pts) for f in container.decode(video)]
        duration = video.duration
    with av.open(str(path)) as container:
        audio = [bytes(p) for p in container.demux(audio=0) if p.size]
    return times, duration, audio


@pytest.mark.slow
def test_two_workers_write_the_video_one_pass_writes(tmp_path: Path) -> None:
    source = make_clip(
        tmp_path / "in.mp4", frames=24, fps=12, encoder_options=B_FRAMES, subtitles=("a", "b")
    )
    chunked, whole = tmp_path / "chunked.mp4", tmp_path / "whole.mp4"
    options = ("--workers", "2", "--chunk-seconds", "0.5")
    done = subprocess.run(
        _command(source, chunked, *options),
        check=False,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr
    assert "in 4 chunks" in done.stdout
    subprocess.run(_command(source, whole), check=True, capture_output=True, timeout=600)
    assert _facts(chunked) == _facts(whole)
    assert _facts(chunked)[2] == _facts(source)[2]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["chunked.mp4", "in.mp4", "whole.mp4"]


@pytest.mark.slow
@pytest.mark.parametrize(
    ("signum", "group", "status"),
    [(signal.SIGTERM, False, 143), (signal.SIGINT, True, 130)],
    ids=["TERM to the command", "Ctrl-C to the terminal's group"],
)
def test_a_stop_ends_every_worker_and_leaves_nothing(
    tmp_path: Path, signum: int, group: bool, status: int
) -> None:
    source = make_clip(tmp_path / "in.mp4", frames=240, fps=24, encoder_options=B_FRAMES)
    child = subprocess.Popen(
        _command(source, tmp_path / "out.mp4", "--workers", "2", "--chunk-seconds", "1"),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # its own process group, as a shell gives a command
    )
    assert child.stderr is not None
    first = child.stderr.readline()
    assert first.startswith("frames "), first
    workers = _workers_of(child.pid)
    assert len(workers) == 2
    if group:
        os.killpg(child.pid, signum)
    else:
        child.send_signal(signum)
    _, rest = child.communicate(timeout=120)
    assert child.returncode == status, rest
    assert "cancelled" in rest
    assert "Traceback" not in rest
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.mp4"]
    assert not any(Path(f"/proc/{pid}").exists() for pid in workers)


def test_a_video_of_one_chunk_takes_the_one_pass_path(tmp_path: Path) -> None:
    source = make_clip(tmp_path / "in.mp4", frames=6, fps=6)
    output = tmp_path / "out.mp4"
    args = ["upscale", str(source), str(output), *FAST_MODEL, "--workers", "2", "--no-temporal"]
    result = CliRunner().invoke(build_app(), args)
    assert result.exit_code == 0, result.stderr
    assert "chunks" not in result.stdout
    assert len(_facts(output)[0]) == 6


def test_workers_must_be_positive(tmp_path: Path) -> None:
    source = make_clip(tmp_path / "in.mp4", frames=6, fps=6)
    args = ["upscale", str(source), str(tmp_path / "o.mp4"), "--workers", "0"]
    assert CliRunner().invoke(build_app(), args).exit_code == 2


def test_a_cpu_runs_one_worker_by_default() -> None:
    assert default_workers(NO_SLOTS) == 1


def test_upscale_workers_take_their_gpus_from_upres_gpus(tmp_path: Path) -> None:
    """The same refusal as ``upres worker``'s for a GPU that is not there: the default
    worker count is one per GPU slot, and the slots honour UPRES_GPUS."""
    source = make_clip(tmp_path / "in.mp4", frames=6, fps=6)
    output = tmp_path / "o.mp4"
    # More GPUs than any machine has: the same refusal wherever the test runs.
    env = {"UPRES_GPUS": "4096", "UPRES_DATA_DIR": str(tmp_path / "data")}
    result = CliRunner().invoke(build_app(), ["upscale", str(source), str(output)], env=env)
    assert result.exit_code == 2  # a configuration error (upres.cli._exits)
    assert "UPRES_GPUS names GPU 4096" in result.stderr
    assert not output.exists()


def _workers_of(pid: int) -> list[int]:
    """The spawned worker processes of ``pid`` (not multiprocessing's resource tracker)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            parent = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            command = (entry / "cmdline").read_bytes()
        except (OSError, IndexError, ValueError):
            continue
        if parent == pid and b"spawn_main" in command:
            found.append(int(entry.name))
    return found


@pytest.mark.slow
def test_a_worker_that_dies_fails_the_command_cleanly(tmp_path: Path) -> None:
    source = make_clip(tmp_path / "in.mp4", frames=240, fps=24, encoder_options=B_FRAMES)
    child = subprocess.Popen(
        _command(source, tmp_path / "out.mp4", "--workers", "2", "--chunk-seconds", "1"),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert child.stderr is not None
    first = child.stderr.readline()
    assert first.startswith("frames "), first
    os.kill(_workers_of(child.pid)[0], signal.SIGKILL)
    _, rest = child.communicate(timeout=120)
    assert child.returncode == 1, rest
    assert "error: A worker process ended" in rest
    assert "Traceback" not in rest
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.mp4"]
