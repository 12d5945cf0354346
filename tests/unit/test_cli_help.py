"""What ``upres ... --help`` prints, for every command and group, against a
checked-in copy in tests/unit/cli_help/ (one file per command).

A change to the help shows up here as a diff to read. To accept it, refresh the copies:

    UPDATE_HELP_SNAPSHOTS=1 .venv/bin/pytest tests/unit/test_cli_help.py

and read ``git diff tests/unit/cli_help`` before committing.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import typer
import typer.rich_utils
from typer.core import TyperGroup
from typer.testing import CliRunner

from upres.cli import build_app

SNAPSHOTS = Path(__file__).parent / "cli_help"
# Rich lays the help out to the terminal's width: one fixed width keeps it stable.
WIDTH = 100
UPDATE = os.environ.get("UPDATE_HELP_SNAPSHOTS") == "1"


def _commands(command: object, path: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    """Every command and group under ``command``, as the words that name it."""
    found = [path]
    if isinstance(command, TyperGroup):
        for name, sub in sorted(command.commands.items()):
            found += _commands(sub, (*path, name))
    return found


COMMANDS = _commands(typer.main.get_command(build_app()))


def _snapshot(words: tuple[str, ...]) -> Path:
    return SNAPSHOTS / ("_".join(("upres", *words)) + ".txt")


@pytest.fixture
def fixed_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    """Plain text at ``WIDTH`` columns, whatever terminal or CI runs the test."""
    monkeypatch.setattr(typer.rich_utils, "MAX_WIDTH", WIDTH)
    monkeypatch.setattr(typer.rich_utils, "FORCE_TERMINAL", False)
    monkeypatch.setattr(typer.rich_utils, "COLOR_SYSTEM", None)


def _help(words: tuple[str, ...]) -> str:
    done = CliRunner().invoke(
        build_app(), [*words, "--help"], prog_name="upres", env={"COLUMNS": str(WIDTH)}
    )
    assert done.exit_code == 0, done.output
    # Rich pads each line to the width; the copies keep no trailing blanks.
    return "\n".join(line.rstrip() for line in done.stdout.splitlines()).strip() + "\n"


@pytest.mark.usefixtures("fixed_terminal")
@pytest.mark.parametrize("words", COMMANDS, ids=lambda words: " ".join(("upres", *words)))
def test_help_is_the_checked_in_text(words: tuple[str, ...]) -> None:
    shown, expected = _help(words), _snapshot(words)
    if UPDATE:
        expected.write_text(shown, encoding="utf-8")
    assert expected.exists(), f"no copy of this help yet; to make one:\n{__doc__}"
    assert shown == expected.read_text(encoding="utf-8")


def test_every_copy_belongs_to_a_command() -> None:
    assert sorted(p.name for p in SNAPSHOTS.glob("*.txt")) == sorted(
        _snapshot(words).name for words in COMMANDS
    )


@pytest.mark.parametrize("words", COMMANDS, ids=lambda words: " ".join(("upres", *words)))
def test_help_is_plain_text_for_users(words: tuple[str, ...]) -> None:
    text = _snapshot(words).read_text(encoding="utf-8")
    for markup in ("``", ":func:", ":class:", "register", "Typer"):
        assert markup not in text
