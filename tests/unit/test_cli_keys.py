"""``upres keys create --api-models``: the API model names a key may ask for,
and its old spelling ``--models`` that operators' scripts still use."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner, Result

from tests.stores import FakeClock, sqlite_store
from upres.cli import build_app
from upres.services.keys import KeyService


def _create(data: Path, *options: str) -> Result:
    command = ["keys", "create", "--data-dir", str(data), *options]
    return CliRunner().invoke(build_app(), command)


def _allowed_models(data: Path, made: Result) -> tuple[str, ...]:
    assert made.exit_code == 0, made.output
    store = sqlite_store(data / "upres.db", FakeClock())
    try:
        key = KeyService(store).authenticate(made.stdout.strip().splitlines()[-1])
    finally:
        store.close()
    return key.allowed_models


def test_api_models_sets_what_the_key_may_ask_for(tmp_path: Path) -> None:
    made = _create(tmp_path, "--api-models", "topaz-video-upscale, other-model")
    assert _allowed_models(tmp_path, made) == ("topaz-video-upscale", "other-model")
    assert made.stderr == ""


def test_a_key_may_ask_for_the_default_api_model_unless_told(tmp_path: Path) -> None:
    assert _allowed_models(tmp_path, _create(tmp_path)) == ("topaz-video-upscale",)


def test_the_old_models_spelling_still_works_and_says_it_is_deprecated(tmp_path: Path) -> None:
    made = _create(tmp_path, "--models", "other-model")
    assert _allowed_models(tmp_path, made) == ("other-model",)
    assert made.stderr == "warning: --models is deprecated; use --api-models\n"


def test_both_spellings_at_once_are_refused_before_any_key_is_made(tmp_path: Path) -> None:
    made = _create(tmp_path, "--models", "a", "--api-models", "b")
    assert made.exit_code == 2
    assert "--api-models only" in made.stderr
    assert not (tmp_path / "upres.db").exists()


def test_help_names_only_the_new_spelling() -> None:
    shown = CliRunner().invoke(build_app(), ["keys", "create", "--help"]).stdout
    assert "--api-models" in shown
    assert "--models" not in shown
