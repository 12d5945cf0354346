"""Settings: ``UPRES_*`` values that do not validate are one clear error, never a traceback."""

from __future__ import annotations

from pathlib import Path

import pytest

from upres.config import load_settings
from upres.domain.media import EncodeSettings
from upres.domain.tasks import Factor
from upres.errors import ConfigError, InvalidRequest
from upres.wiring import services_from_settings


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
        ({"UPRES_NETWORK_PRICES": "x4plus=2"}, "UPRES_NETWORK_PRICES: give a JSON object"),
        (
            {"UPRES_CALLBACK_RETRY_DELAYS_S": "[1,"},
            "UPRES_CALLBACK_RETRY_DELAYS_S: give a JSON list, like [1, 2, 4] (Expecting value",
        ),
        (
            {"UPRES_NETWORK_PRICES": '{"realesrgan-x4plus": 0}'},
            "UPRES_NETWORK_PRICES: the multiplier of realesrgan-x4plus must be a positive",
        ),
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


def test_network_prices_come_from_the_environment_as_json(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert load_settings().pricing.multiplier("realesrgan-x4plus") == 1.0
    monkeypatch.setenv("UPRES_NETWORK_PRICES", '{"realesrgan-x4plus": 2.5}')
    pricing = load_settings().pricing
    assert pricing.multiplier("realesrgan-x4plus") == 2.5
    assert pricing.rate(Factor.X4, "realesrgan-x4plus") == 28.0 * 2.5
    assert pricing.rate(Factor.X4, "realesr-animevideov3") == pricing.rate(Factor.X4, None) == 28
    monkeypatch.setenv("UPRES_NETWORK_PRICES", " ")
    assert load_settings().network_prices == {}


def test_an_api_whose_prices_name_no_network_does_not_start(tmp_path: Path) -> None:
    settings = load_settings(data_dir=tmp_path, network_prices={"realesrgan-x4": 2.0})
    unknown = "UPRES_NETWORK_PRICES: unknown model 'realesrgan-x4'"
    with pytest.raises(ConfigError, match=unknown), services_from_settings(settings):
        pass


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
