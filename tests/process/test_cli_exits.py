"""Exit statuses: one table for every command (upres.cli._exits, README "Exit codes"),
and commands run as processes: a configuration error is one line on stderr, exit 2,
and nothing written."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tests.clips import make_clip
from upres.cli import build_app
from upres.cli._exits import error_code, stopped_by
from upres.errors import (
    ConfigError,
    EncodeError,
    ModelError,
    NotAVideo,
    NotFound,
    UpresError,
)
from upres.pipeline.stages import CancelToken


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


@pytest.mark.parametrize(
    ("error", "code"),
    [
        (ConfigError("invalid settings: UPRES_DEVICE"), 2),
        (NotAVideo("not a video"), 1),
        (ModelError("cuda is not available"), 1),
        (EncodeError("cannot write"), 1),
        (NotFound("no such account"), 1),
    ],
)
def test_configuration_errors_exit_2_and_failed_work_1(error: UpresError, code: int) -> None:
    assert error_code(error) == code


@pytest.mark.parametrize(
    ("signum", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143), (signal.SIGHUP, 129)]
)
def test_a_stop_signal_exits_128_plus_its_number(signum: int, code: int) -> None:
    assert stopped_by(signum) == code


def test_a_configuration_error_found_mid_run_exits_2_from_upscale(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = make_clip(tmp_path / "in.mp4", frames=2)
    output = tmp_path / "out.mp4"

    # A setting found wrong once the work started (as UPRES_GPUS naming a
    # missing GPU is): the one thing here that needs a stand-in.
    def late(self: CancelToken) -> None:
        raise ConfigError("UPRES_GPUS names GPU 7, but torch sees 0 GPU(s)")

    monkeypatch.setattr(CancelToken, "raise_if_cancelled", late)
    args = ["upscale", str(source), str(output), "--model", "realesr-animevideov3"]
    done = CliRunner().invoke(build_app(), [*args, "--device", "cpu"])

    assert done.exit_code == 2
    assert done.stderr == "error: UPRES_GPUS names GPU 7, but torch sees 0 GPU(s)\n"
    assert not output.exists()


@pytest.mark.slow
def test_a_configuration_error_found_at_start_exits_2_from_serve(tmp_path: Path) -> None:
    # More GPUs than any machine has: the same refusal wherever the test runs.
    env = {**os.environ, "UPRES_DATA_DIR": str(tmp_path / "data"), "UPRES_GPUS": "4096"}
    done = subprocess.run(
        [sys.executable, "-m", "upres.cli", "serve", "--port", "0"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 2, done.stderr
    assert done.stderr.startswith("error: UPRES_GPUS names GPU 4096, but ")
    assert done.stderr.count("\n") == 1


@pytest.mark.parametrize("command", [["keys", "list"], ["credits", "balance", "acct_x"]])
def test_a_database_url_upres_cannot_use_exits_2_in_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, command: list[str]
) -> None:
    monkeypatch.setenv("UPRES_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("UPRES_DATABASE_URL", "nosuchdb://user:secret@host/upres")

    done = CliRunner().invoke(build_app(), command)

    assert done.exit_code == 2, done.output
    assert done.stderr.startswith("error: UPRES_DATABASE_URL ")
    assert done.stderr.count("\n") == 1
    assert "secret" not in done.stderr


def test_a_missing_account_exits_1(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("UPRES_DATA_DIR", str(tmp_path))
    done = CliRunner().invoke(build_app(), ["credits", "balance", "acct_missing"])
    assert done.exit_code == 1
    assert done.stderr.startswith("error: ")
