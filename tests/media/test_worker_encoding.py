"""The service's encoding follows the model and the device: the worker half loads torch."""

from __future__ import annotations

import pytest
import torch

from upres.config import load_settings
from upres.worker_wiring import output_encoding


@pytest.mark.parametrize(
    ("cuda", "env", "preset"),
    [
        (True, {"UPRES_MODEL": "realesr-animevideov3"}, "veryfast"),
        (True, {"UPRES_MODEL": "realesr-animevideov3", "UPRES_DEVICE": "cpu"}, None),
        (True, {}, None),
        (True, {"UPRES_MODEL": "realesr-animevideov3", "UPRES_ENCODE_PRESET": "fast"}, "fast"),
        (False, {"UPRES_MODEL": "realesr-animevideov3"}, None),
    ],
    ids=["fast-model-on-gpu", "forced-cpu", "default-slow-model", "chosen", "no-gpu"],
)
def test_service_encoding_keeps_up_with_a_fast_model_on_a_gpu(
    monkeypatch: pytest.MonkeyPatch, cuda: bool, env: dict[str, str], preset: str | None
) -> None:
    # Whether CUDA is present is the one thing this machine cannot vary for real.
    monkeypatch.setattr(torch.cuda, "is_available", lambda: cuda)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert output_encoding(load_settings()).preset == preset
