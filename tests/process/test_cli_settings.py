"""Every command takes its options' defaults from the same ``UPRES_*`` settings
the server reads; an option given on the command line wins."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tests.clips import make_clip
from tests.stores import FakeClock, sqlite_store
from upres.cli import build_app
from upres.services.credits import CreditService
from upres.services.keys import KeyService


def _create_key(*options: str) -> str:
    """``upres keys create`` with ``options``; returns the secret (its last line)."""
    made = CliRunner().invoke(build_app(), ["keys", "create", "--credits", "5", *options])
    assert made.exit_code == 0, made.output
    return made.stdout.strip().splitlines()[-1]


def test_keys_create_writes_to_the_database_of_upres_data_dir(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    server = tmp_path / "server"
    monkeypatch.setenv("UPRES_DATA_DIR", str(server))
    monkeypatch.chdir(tmp_path)

    secret = _create_key()

    store = sqlite_store(server / "upres.db", FakeClock())
    try:
        key = KeyService(store).authenticate(secret)
        assert CreditService(store).balance(key.account_id) == 5
    finally:
        store.close()
    # Not a second database in the working directory that no server reads.
    assert sorted(p.name for p in tmp_path.iterdir()) == ["server"]


def test_data_dir_on_the_command_line_wins_over_upres_data_dir(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("UPRES_DATA_DIR", str(tmp_path / "from-env"))
    chosen = tmp_path / "chosen"

    secret = _create_key("--data-dir", str(chosen))

    store = sqlite_store(chosen / "upres.db", FakeClock())
    try:
        assert KeyService(store).authenticate(secret).revoked is False
    finally:
        store.close()
    assert not (tmp_path / "from-env").exists()


def test_credits_and_key_listing_read_upres_data_dir(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("UPRES_DATA_DIR", str(tmp_path / "server"))
    monkeypatch.chdir(tmp_path)
    runner, app = CliRunner(), build_app()
    secret = _create_key()
    store = sqlite_store(tmp_path / "server" / "upres.db", FakeClock())
    try:
        key = KeyService(store).authenticate(secret)
    finally:
        store.close()

    granted = runner.invoke(app, ["credits", "grant", key.account_id, "2"])
    balance = runner.invoke(app, ["credits", "balance", key.account_id])
    listed = runner.invoke(app, ["keys", "list"])

    assert (granted.exit_code, balance.stdout) == (0, "7\n")
    assert key.id in listed.stdout
    assert sorted(p.name for p in tmp_path.iterdir()) == ["server"]


@pytest.mark.slow
def test_upscale_chunks_follow_upres_chunk_seconds(tmp_path: Path) -> None:
    source = make_clip(tmp_path / "in.mp4", frames=24, fps=12, encoder_options={"g": "6"})
    command = [sys.executable, "-c", "from upres.cli import main; main()", "upscale"]
    options = ["--model", "realesr-animevideov3", "--device", "cpu", "--workers", "2"]
    done = subprocess.run(
        [*command, str(source), str(tmp_path / "out.mp4"), *options],
        env={**os.environ, "UPRES_CHUNK_SECONDS": "0.5"},
        check=False,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr
    assert "in 4 chunks" in done.stdout
