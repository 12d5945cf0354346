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
