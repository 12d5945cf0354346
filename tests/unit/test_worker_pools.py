"""Worker pools: which GPU a worker process gets, and the commands' refusals."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from upres.config import load_settings
from upres.errors import ConfigError
from upres.models.devices import gpu_for_slot, visible_devices, worker_gpus


@pytest.mark.parametrize(
    ("slot", "gpus", "expected"),
    [
        (0, (0, 1), 0),
        (1, (0, 1), 1),
        (2, (0, 1), 0),
        (5, (2, 5, 7), 7),
        (0, (3,), 3),
        (4, (3,), 3),
        (0, (), None),
        (3, (), None),
    ],
)
def test_slot_k_gets_gpus_k_modulo_their_number(
    slot: int, gpus: tuple[int, ...], expected: int | None
) -> None:
    assert gpu_for_slot(slot, gpus) == expected


@pytest.mark.parametrize(
    ("gpu", "inherited", "expected"),
    [
        (1, None, "1"),
        (0, "4,6", "4"),
        (1, "4,6", "6"),
        (1, "GPU-a1b2, GPU-c3d4", "GPU-c3d4"),
    ],
)
def test_a_worker_sees_only_its_gpu_among_those_it_inherited(
    gpu: int, inherited: str | None, expected: str
) -> None:
    assert visible_devices(gpu, inherited) == expected


def no_device_count() -> int:
    raise AssertionError("a CPU deployment must not ask torch about GPUs")


def test_workers_use_every_gpu_torch_sees_unless_told() -> None:
    settings = load_settings(device="auto")

    assert worker_gpus(settings, lambda: 3) == (0, 1, 2)
    assert worker_gpus(settings, lambda: 0) == ()
    assert worker_gpus(load_settings(gpus=(2, 0)), lambda: 3) == (2, 0)
    assert worker_gpus(load_settings(device="cpu", gpus=(1,)), no_device_count) == ()


def test_vulkan_workers_take_only_the_usable_devices() -> None:
    # ncnn numbers every Vulkan device, software ones (llvmpipe) included.
    settings = load_settings(device="vulkan")
    assert worker_gpus(settings, lambda: 3, usable=lambda index: index != 1) == (0, 2)
    with pytest.raises(ConfigError, match=r"names GPU 3, but Vulkan sees 3 GPU\(s\)"):
        worker_gpus(load_settings(gpus=(3,)), lambda: 3, seen_by="Vulkan")


def test_a_gpu_torch_does_not_see_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match=r"UPRES_GPUS names GPU 2, but torch sees 2 GPU\(s\)"):
        worker_gpus(load_settings(gpus=(0, 2)), lambda: 2)


@pytest.mark.parametrize(
    ("value", "expected"), [("0,2", (0, 2)), (" 1 , 3 ", (1, 3)), ("4", (4,)), ("", None)]
)
def test_upres_gpus_is_a_comma_separated_list(
    monkeypatch: pytest.MonkeyPatch, value: str, expected: tuple[int, ...] | None
) -> None:
    monkeypatch.setenv("UPRES_GPUS", value)
    settings = load_settings()

    assert settings.gpus == expected
    assert type(settings).model_validate_json(settings.model_dump_json()).gpus == expected


@pytest.mark.parametrize("value", ["a", "0,,1", "-1", "0;1"])
def test_a_bad_upres_gpus_is_one_clear_error(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    monkeypatch.setenv("UPRES_GPUS", value)
    with pytest.raises(ConfigError) as caught:
        load_settings()
    assert str(caught.value) == (
        "invalid settings: UPRES_GPUS: list GPU indices (0 or more) separated by commas, like 0,1"
    )


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
