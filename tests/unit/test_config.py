"""Settings: ``UPRES_*`` values that do not validate are one clear error, never a traceback."""

from __future__ import annotations

import pytest

from upres.config import load_settings
from upres.domain.media import EncodeSettings
from upres.errors import ConfigError, InvalidRequest


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"UPRES_DEVICE": "tpu"}, "UPRES_DEVICE: Input should be 'auto', 'cpu', 'cuda' or"),
        ({"UPRES_VULKAN_DEVICE": "-1"}, "UPRES_VULKAN_DEVICE: Input should be greater than"),
        ({"UPRES_ENCODE_PRESET": "warp"}, "UPRES_ENCODE_PRESET: h264 has no preset 'warp'"),
        (
            {"UPRES_ENCODE_CODEC": "av1", "UPRES_ENCODE_PRESET": "medium"},
            "UPRES_ENCODE_PRESET: av1 has no preset 'medium'",
        ),
        ({"UPRES_ENCODE_CRF": "52"}, "UPRES_ENCODE_CRF: h264 crf must be 0..51, got 52"),
        ({"UPRES_ENCODE_THREADS": "-1"}, "UPRES_ENCODE_THREADS: Input should be greater than"),
        ({"UPRES_PORT": "http"}, "UPRES_PORT: Input should be a valid integer"),
    ],
)
def test_invalid_settings_name_the_variable(
    monkeypatch: pytest.MonkeyPatch, env: dict[str, str], message: str
) -> None:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(ConfigError, match="invalid settings") as caught:
        load_settings()
    assert message in str(caught.value)


def test_encode_settings_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("UPRES_ENCODE_CODEC", "h265")
    monkeypatch.setenv("UPRES_ENCODE_PRESET", "veryfast")
    monkeypatch.setenv("UPRES_ENCODE_CRF", "24")
    expected = EncodeSettings(codec="h265", preset="veryfast", crf=24)
    assert load_settings().encode_settings == expected


def test_overrides_win_and_none_means_not_given(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("UPRES_PORT", "9000")
    assert load_settings(port=None).port == 9000
    assert load_settings(port=9100).port == 9100


@pytest.mark.parametrize(
    ("kwargs", "param"),
    [
        ({"preset": "medium", "codec": "av1"}, "preset"),
        ({"crf": 64, "codec": "av1"}, "crf"),
        ({"crf": -1}, "crf"),
        ({"threads": -2}, "threads"),
    ],
)
def test_encode_settings_refuse_what_the_codec_does_not_take(
    kwargs: dict[str, object], param: str
) -> None:
    with pytest.raises(InvalidRequest) as caught:
        EncodeSettings(**kwargs)  # type: ignore[arg-type]
    assert caught.value.param == param
