"""Settings for a command: the environment plus its options, or one error line and exit 2."""

from __future__ import annotations

from upres.cli._exits import fail
from upres.config import Settings, load_settings
from upres.errors import ConfigError


def settings_or_exit(**overrides: object) -> Settings:
    """``load_settings(**overrides)``; a ConfigError prints ``error: ...`` and exits 2."""
    try:
        return load_settings(**overrides)
    except ConfigError as exc:
        fail(exc)


def setting_default(name: str, otherwise: object = None) -> str:
    """How an option's help names its default: ``default: UPRES_<NAME>, else <value>``,
    the value being ``otherwise`` or else the setting's own default."""
    value = Settings.model_fields[name].default if otherwise is None else otherwise
    return f"default: UPRES_{name.upper()}, else {value}"
