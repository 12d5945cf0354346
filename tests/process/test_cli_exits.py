"""Commands run as processes: a configuration error is one line on stderr, exit 2,
and nothing written."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest


@pytest.mark.slow
@pytest.mark.parametrize(
    "command",
    [
        ["serve", "--port", "8123"],
        ["worker"],
        ["keys", "create", "--credits", "1"],
        ["upscale", "in.mp4", "out.mp4"],
    ],
)
def test_commands_print_one_line_and_exit_2(tmp_path: Path, command: list[str]) -> None:
    env = {**os.environ, "UPRES_DEVICE": "tpu", "UPRES_DATA_DIR": str(tmp_path)}
    done = subprocess.run(
        [sys.executable, "-m", "upres.cli", *command],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2
    assert done.stderr == (
        "error: invalid settings: UPRES_DEVICE: Input should be 'auto', 'cpu', 'cuda' or 'vulkan'\n"
    )
    assert list(tmp_path.iterdir()) == []


def run_worker_command(tmp_path: Path, env: dict[str, str], prelude: str = "") -> str:
    """``upres worker`` as a command; returns stderr after checking it exits 2."""
    code = f"{prelude}from upres.cli import main; main()"
    done = subprocess.run(
        [sys.executable, "-c", code, "worker"],
        cwd=tmp_path,
        env={**os.environ, "UPRES_DATA_DIR": str(tmp_path / "data"), **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2, done.stderr
    assert not (tmp_path / "data").exists()
    return done.stderr


@pytest.mark.slow
def test_upres_worker_refuses_a_gpu_torch_does_not_see(tmp_path: Path) -> None:
    # More GPUs than any machine has: the same refusal wherever the test runs.
    stderr = run_worker_command(tmp_path, {"UPRES_GPUS": "4096"})
    assert stderr.startswith("error: UPRES_GPUS names GPU 4096, but torch sees ")
    assert stderr.count("\n") == 1


@pytest.mark.slow
def test_upres_worker_with_ray_but_no_ray_installed_is_one_line(tmp_path: Path) -> None:
    # None in sys.modules makes `import ray` fail as if ray were not installed.
    stderr = run_worker_command(
        tmp_path,
        {"UPRES_RAY_ADDRESS": "auto"},
        prelude="import sys; sys.modules['ray'] = None; ",
    )
    assert stderr == (
        "error: UPRES_RAY_ADDRESS is set but ray is not installed: pip install 'upres[ray]'\n"
    )
