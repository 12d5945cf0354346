"""``upres remote`` against servers that fail: each file fails with one line, the
batch goes on, nothing is written, no traceback."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from testkit.net import free_port
from typer.testing import CliRunner

from tests.clips import make_clip
from upres.cli import build_app


class _NotThisApi(BaseHTTPRequestHandler):
    """Answers every POST with JSON that is not upres's API."""

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", "0")))
        body = b'{"hello": "world"}'
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        """Quiet."""


@pytest.fixture
def odd_server() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _NotThisApi)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02})
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()
    thread.join()


@pytest.fixture
def clips(tmp_path: Path) -> Path:
    folder = tmp_path / "src"
    folder.mkdir()
    make_clip(folder / "a.mp4", frames=2, fps=6)
    make_clip(folder / "b.mp4", frames=2, fps=6)
    return folder


def _remote(server: str, *args: str) -> tuple[int, list[dict[str, object]], str]:
    result = CliRunner().invoke(
        build_app(), ["remote", *args, "--server", server, "--key", "k", "--json"]
    )
    return result.exit_code, [json.loads(x) for x in result.stdout.splitlines()], result.stderr


def test_a_server_that_is_not_there_fails_each_file(clips: Path, tmp_path: Path) -> None:
    code, lines, stderr = _remote(
        f"http://127.0.0.1:{free_port()}", str(clips), str(tmp_path / "o")
    )
    assert code == 1
    assert [line["status"] for line in lines] == ["failed", "failed"]
    assert all(str(line["reason"]).startswith("Cannot reach the server") for line in lines)
    assert "Traceback" not in stderr
    assert sorted(p.name for p in (tmp_path / "o").iterdir()) == [".upres"]


def test_an_answer_that_is_not_this_api_fails_the_file(
    clips: Path, tmp_path: Path, odd_server: str
) -> None:
    code, lines, stderr = _remote(odd_server, str(clips), str(tmp_path / "o"))
    assert code == 1
    assert [line["status"] for line in lines] == ["failed", "failed"]
    assert "is not this API's" in str(lines[0]["reason"])
    assert "Traceback" not in stderr


def test_the_key_is_required(clips: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("UPRES_API_KEY", raising=False)
    result = CliRunner().invoke(
        build_app(), ["remote", str(clips), str(tmp_path / "o"), "--server", "http://x"]
    )
    assert result.exit_code == 2
    assert "--key" in result.stderr
