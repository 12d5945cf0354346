"""``upres remote``: a folder upscaled by a real ``upres serve`` on loopback, and a run
killed after its submission that finds its task on the next run."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import av
import pytest
from testkit.net import free_port
from typer.testing import CliRunner

from tests.clips import make_clip
from tests.integration.serve_harness import Client, CreatedKey, Serve, create_key, wait_for
from upres.cli import build_app
from upres.cli.api_client import ApiClient
from upres.cli.batch import identity_of
from upres.cli.manifest import MANIFEST_FILE, STATE_DIR, opened

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Serve, CreatedKey]]:
    env = {
        **os.environ,
        # The fast compact model, no temporal stage: CPU runs of seconds.
        "UPRES_MODEL": "realesr-animevideov3",
        "UPRES_TEMPORAL": "false",
        "UPRES_DEVICE": "cpu",
        "UPRES_INITIAL_CREDITS": "0",
        "UPRES_RATE_LIMIT_PER_MINUTE": "100000",
    }
    data_dir = tmp_path_factory.mktemp("data")
    key = create_key(data_dir, credits=10_000, env=env)
    serve = Serve(data_dir, port=free_port(), env=env).start()
    yield serve, key
    serve.stop()


def _remote(serve: Serve, key: CreatedKey, *args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(
        build_app(),
        ["remote", *args, "--server", serve.base_url, "--json"],
        env={"UPRES_API_KEY": key.secret},
    )
    return result.exit_code, result.stdout, result.stderr


def _task_count(serve: Serve, key: CreatedKey) -> int:
    client = Client(serve.base_url, key.secret)
    try:
        return len(client.request("GET", "/v1/tasks", params={"limit": 100}).json()["data"])
    finally:
        client.close()


def test_a_folder_is_upscaled_by_the_server_and_a_rerun_skips_it(
    service: tuple[Serve, CreatedKey], tmp_path: Path
) -> None:
    serve, key = service
    source = tmp_path / "src"
    (source / "sub").mkdir(parents=True)
    make_clip(source / "a.mp4", frames=2, fps=6)
    make_clip(source / "sub" / "b.mkv", frames=2, fps=6, container="matroska")
    (source / "sub" / "upres.toml").write_text("factor = 1\n")
    (source / "notes.txt").write_text("not a video\n")
    out = tmp_path / "out"
    code, stdout, stderr = _remote(serve, key, str(source), str(out))
    assert code == 0, stderr
    lines = {Path(j["source"]).name: j for j in map(json.loads, stdout.splitlines())}
    assert [lines[n]["status"] for n in ("a.mp4", "b.mkv", "notes.txt")] == [
        "done",
        "done",
        "skipped",
    ]
    with av.open(str(out / "a.mp4")) as container:
        assert (container.streams.video[0].width, container.streams.video[0].height) == (128, 96)
    with av.open(str(out / "sub" / "b.mp4")) as container:
        assert container.streams.video[0].width == 64
    code, stdout, _ = _remote(serve, key, str(source), str(out))
    assert code == 0
    assert {json.loads(line)["status"] for line in stdout.splitlines()} == {"skipped"}


def test_a_run_killed_after_submitting_polls_its_task_instead_of_submitting_again(
    service: tuple[Serve, CreatedKey], tmp_path: Path
) -> None:
    serve, key = service
    source = tmp_path / "src"
    source.mkdir()
    make_clip(source / "clip.mp4", frames=24, fps=12)
    out = tmp_path / "out"
    manifest = out / STATE_DIR / MANIFEST_FILE
    before = _task_count(serve, key)
    command = [sys.executable, "-m", "upres.cli", "remote", str(source), str(out)]
    child = subprocess.Popen(
        [*command, "--server", serve.base_url],
        env={**os.environ, "UPRES_API_KEY": key.secret},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )

    def submitted() -> bool:
        return manifest.is_file() and "task_id" in manifest.read_text()

    wait_for(submitted, timeout_s=120, what="the task to be submitted")
    os.kill(child.pid, signal.SIGKILL)
    child.wait(30)
    assert not (out / "clip.mp4").exists()

    code, stdout, stderr = _remote(serve, key, str(source), str(out))
    assert code == 0, stderr
    line = json.loads(stdout)
    assert line["status"] == "done"
    assert "already submitted: resumed" in line["reason"]
    assert _task_count(serve, key) == before + 1
    assert sorted(p.name for p in out.iterdir()) == [STATE_DIR, "clip.mp4"]


def _kept_upload(out: Path, clip: Path, serve: Serve, **kept: str) -> None:
    """The manifest as a run leaves it when it stopped after uploading ``clip``."""
    identity = identity_of(clip, {"server": serve.base_url, "factor": 2})
    with opened(out) as manifest:
        manifest.start(out / "clip.mp4", identity, **kept)


def test_a_run_stopped_before_recording_its_task_gets_it_back_by_its_idempotency_key(
    service: tuple[Serve, CreatedKey], tmp_path: Path
) -> None:
    serve, key = service
    clip = make_clip(tmp_path / "clip.mp4", frames=2, fps=6)
    client = ApiClient(serve.base_url, key.secret)
    try:
        url = client.upload(clip)
        first = client.submit(url, factor=2, idempotency_key="upres-remote-test-1")
    finally:
        client.close()
    out = tmp_path / "out"
    _kept_upload(out, clip, serve, upload_url=url, idempotency_key="upres-remote-test-1")
    before = _task_count(serve, key)

    code, stdout, stderr = _remote(serve, key, str(clip), str(out))
    assert code == 0, stderr
    line = json.loads(stdout)
    assert line["reason"].endswith(f"from task {first.task['id']} (already submitted: resumed)")
    assert _task_count(serve, key) == before


def test_a_kept_upload_the_server_no_longer_has_is_uploaded_again(
    service: tuple[Serve, CreatedKey], tmp_path: Path
) -> None:
    serve, key = service
    clip = make_clip(tmp_path / "clip.mp4", frames=2, fps=6)
    out = tmp_path / "out"
    gone = "upres-upload://upload-0000000000000000"
    _kept_upload(out, clip, serve, upload_url=gone, idempotency_key="upres-remote-test-2")

    code, stdout, stderr = _remote(serve, key, str(clip), str(out))
    assert code == 0, stderr
    assert "resumed" not in json.loads(stdout)["reason"]
    assert gone not in (out / STATE_DIR / MANIFEST_FILE).read_text()
