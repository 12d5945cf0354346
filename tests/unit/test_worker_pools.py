"""Worker pools: which GPU a worker process gets, and the commands' refusals."""

from __future__ import annotations

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
