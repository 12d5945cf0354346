"""The whole service on one machine, as a user runs it: ``upres serve`` in its
own processes, inputs from a real HTTP server, callbacks to a real HTTPS
receiver, the real engine with a real model on tiny clips."""

from __future__ import annotations

import json
import os
import ssl
import time
from collections.abc import Iterator
from pathlib import Path

import av
import httpx
import pytest
import trustme
from testkit.net import free_port

from tests.clips import make_clip, write_faststart, write_truncated
from tests.clips_media import LIGHT, MASTERING, make_hdr_clip
from tests.integration.serve_harness import (
    Client,
    CreatedKey,
    Serve,
    create_key,
    wait_for,
)
from tests.servers import LocalHttpServer, Route, WebhookReceiver
from upres.callbacks import verify_signature
from upres.db.task_store import SqlTaskStore
from upres.domain.media import HdrInfo
from upres.domain.uploads import kept_input_id
from upres.inputs.hdr_metadata import hdr_info

pytestmark = pytest.mark.slow

CREDITS = 1000.0
PRICE_2X = 16.0  # the default price per started second at 2x (UPRES_PRICE_PER_SECOND_2X)


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture(scope="module")
def receiver(ca: trustme.CA) -> Iterator[WebhookReceiver]:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("localhost", "127.0.0.1").configure_cert(context)
    with WebhookReceiver(tls=context) as server:
        yield server


@pytest.fixture(scope="module")
def env(ca: trustme.CA, tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    ca_file = tmp_path_factory.mktemp("ca") / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    return {
        **os.environ,
        "UPRES_ALLOW_PRIVATE_NETWORKS": "true",
        "UPRES_CALLBACK_CA_FILE": str(ca_file),
        # The fast compact Real-ESRGAN model keeps CPU runs short; the default
        # model per factor is exercised by the engine's own tests.
        "UPRES_MODEL": "realesr-animevideov3",
        "UPRES_LEASE_S": "6",
        "UPRES_HEARTBEAT_S": "0.5",
        "UPRES_REAPER_INTERVAL_S": "0.5",
        "UPRES_INITIAL_CREDITS": "0",
        "UPRES_RATE_LIMIT_PER_MINUTE": "100000",
    }


@pytest.fixture(scope="module")
def videos(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalHttpServer]:
    folder = tmp_path_factory.mktemp("videos")
    with LocalHttpServer() as server:
        server.routes["/short.mp4"] = Route(body=make_clip(folder / "s.mp4").read_bytes())
        long_clip = make_clip(folder / "l.mp4", width=128, height=96, frames=96, fps=24)
        server.routes["/long.mp4"] = Route(body=long_clip.read_bytes())
        server.routes["/hdr10.mp4"] = Route(body=make_hdr_clip(folder / "h.mp4").read_bytes())
        yield server


@pytest.fixture(scope="module")
def service(
    env: dict[str, str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Serve, CreatedKey]]:
    data_dir = tmp_path_factory.mktemp("data")
    key = create_key(data_dir, credits=CREDITS, env=env)
    serve = Serve(data_dir, port=free_port(), env=env).start()
    yield serve, key
    serve.stop()


@pytest.fixture(scope="module")
def client(service: tuple[Serve, CreatedKey]) -> Iterator[Client]:
    serve, key = service
    client = Client(serve.base_url, key.secret)
    yield client
    client.close()


def test_a_task_completes_and_its_signed_callback_matches_the_task_query(
    client: Client,
    service: tuple[Serve, CreatedKey],
    videos: LocalHttpServer,
    receiver: WebhookReceiver,
    tmp_path: Path,
) -> None:
    before = client.credits()
    hook = receiver.url("/done", host="localhost")
    created = client.submit(videos.url("/short.mp4"), callback_url=hook)
    assert created["status"] == "pending"
    assert created["usage"]["credits_reserved"] == PRICE_2X
    assert client.credits() == before - PRICE_2X

    done = client.wait_for(created["id"], "completed", "failed")
    assert done["status"] == "completed", done
    assert done["progress"] == 100
    assert done["task_info"]["can_cancel"] is False

    output = tmp_path / "out.mp4"
    with httpx.Client(timeout=30) as http:
        output.write_bytes(http.get(done["results"][0]).content)
        ranged = http.get(done["results"][0], headers={"Range": "bytes=0-99"})
    with av.open(str(output)) as container:
        video = container.streams.video[0]
        assert (video.codec_context.width, video.codec_context.height) == (128, 96)
        assert len(container.streams.audio) == 1
    assert ranged.status_code == 206
    assert len(ranged.content) == 100

    wait_for(lambda: bool(receiver.received), timeout_s=30, what="the callback")
    call = receiver.received[0]
    assert call.path == "/done"
    assert json.loads(call.body) == client.task(created["id"])
    assert verify_signature(service[1].webhook_secret, call.headers, call.body)
    assert client.credits() == before - PRICE_2X


def test_an_hdr10_task_says_it_wrote_h265_10_bit_and_keeps_the_metadata(
    client: Client, videos: LocalHttpServer, tmp_path: Path
) -> None:
    created = client.submit(videos.url("/hdr10.mp4"))
    done = client.wait_for(created["id"], "completed", "failed")
    assert done["status"] == "completed", done
    assert done["task_info"]["notes"] == [
        "the source is HDR10 (PQ) 10-bit: writing h265 10-bit instead of h264"
    ]
    output = tmp_path / "out.mp4"
    with httpx.Client(timeout=30) as http:
        output.write_bytes(http.get(done["results"][0]).content)
    with av.open(str(output)) as container:
        frame = next(container.decode(video=0))
        assert (container.streams.video[0].codec.name, frame.format.name) == (
            "hevc",
            "yuv420p10le",
        )
        assert hdr_info(frame) == HdrInfo(mastering=MASTERING, light=LIGHT)


def test_cancelling_a_processing_task_stops_it_and_refunds_everything(
    client: Client, videos: LocalHttpServer
) -> None:
    before = client.credits()
    created = client.submit(videos.url("/long.mp4"), factor="4")
    client.wait_for(created["id"], "processing")
    assert client.credits() < before

    cancelled = client.cancel(created["id"])
    assert cancelled.status_code == 200
    assert cancelled.json()["status"] == "cancelled"
    assert cancelled.json()["task_info"]["can_cancel"] is False
    assert client.credits() == before
    assert client.cancel(created["id"]).status_code == 409

    # The worker notices within a heartbeat and takes the next task.
    follow_up = client.submit(videos.url("/short.mp4"))
    assert client.wait_for(follow_up["id"], "completed", "failed")["status"] == "completed"
    assert client.task(created["id"])["status"] == "cancelled"


def test_a_task_whose_input_disappears_fails_at_once_and_is_refunded(
    client: Client, videos: LocalHttpServer, tmp_path: Path
) -> None:
    """A 404 is the same on every try: one download attempt, no retries."""
    videos.routes["/vanishing.mp4"] = Route(body=make_clip(tmp_path / "v.mp4").read_bytes())
    before = client.credits()
    created = client.submit(videos.url("/vanishing.mp4"))
    probed = len(videos.requests)
    videos.routes["/vanishing.mp4"] = Route(status=404)

    failed = client.wait_for(created["id"], "failed", "completed")
    assert failed["status"] == "failed"
    assert failed["error"]["code"] == "video_probe_failed"
    assert "HTTP 404" in failed["error"]["message"]
    assert "results" not in failed
    assert client.credits() == before
    assert [path for path, _ in videos.requests[probed:]] == ["/vanishing.mp4"]


def test_an_input_whose_server_ignores_range_is_downloaded_once(
    client: Client, videos: LocalHttpServer, tmp_path: Path
) -> None:
    """The submission's probe has to read it whole: it keeps it as the task's upload,
    and the worker reads that instead of downloading it again."""
    body = make_clip(tmp_path / "w.mp4").read_bytes()
    videos.routes["/whole.mp4"] = Route(body=body, ranges=False)
    created = client.submit(videos.url("/whole.mp4"))
    done = client.wait_for(created["id"], "completed", "failed")

    assert done["status"] == "completed", done
    assert [path for path, _ in videos.requests if path == "/whole.mp4"] == ["/whole.mp4"]
    assert videos.bytes_sent["/whole.mp4"] == len(body)
    kept = client.request("GET", f"/v1/uploads/{kept_input_id(created['id'])}")
    assert kept.status_code == 200
    assert kept.json()["bytes"] == len(body)


def test_a_truncated_input_fails_as_video_decode_failed_and_is_refunded(
    client: Client, videos: LocalHttpServer, tmp_path: Path
) -> None:
    whole = write_faststart(make_clip(tmp_path / "c.mp4", frames=24), tmp_path / "whole.mp4")
    cut = write_truncated(whole, tmp_path / "cut.mp4")
    videos.routes["/cut.mp4"] = Route(body=cut.read_bytes())
    before = client.credits()
    created = client.submit(videos.url("/cut.mp4"))

    failed = client.wait_for(created["id"], "failed", "completed")
    assert failed["status"] == "failed"
    assert failed["error"]["code"] == "video_decode_failed"
    assert "truncated" in failed["error"]["message"]
    assert "results" not in failed
    assert client.credits() == before


def test_a_crash_mid_task_is_recovered_after_restart_and_charged_once(
    env: dict[str, str], videos: LocalHttpServer, tmp_path: Path
) -> None:
    data_dir = tmp_path / "data"
    key = create_key(data_dir, credits=CREDITS, env=env)
    port = free_port()
    serve = Serve(data_dir, port=port, env=env).start()
    client = Client(serve.base_url, key.secret)
    created = client.submit(videos.url("/long.mp4"))
    wait_for(
        lambda: client.task(created["id"])["progress"] > 0,
        timeout_s=300,
        what="progress on the task",
    )
    serve.kill()

    serve = Serve(data_dir, port=port, env=env).start()
    try:
        done = client.wait_for(created["id"], "completed", "failed", timeout_s=600)
        remaining = client.credits()
    finally:
        serve.stop()
        client.close()
    assert done["status"] == "completed", done
    charge = PRICE_2X * 4  # a 4 s clip at 2x
    assert remaining == CREDITS - charge
    store = SqlTaskStore(f"sqlite:///{data_dir / 'upres.db'}")
    try:
        entries = [e for e in store.ledger(key.account_id) if e.task_id == created["id"]]
    finally:
        store.close()
    assert [(e.kind.value, e.amount) for e in entries] == [
        ("reserve", charge),
        ("capture", charge),
    ]


def test_an_api_only_serve_is_healthy_and_its_tasks_wait_for_workers(
    env: dict[str, str], videos: LocalHttpServer, tmp_path: Path
) -> None:
    """``--workers 0``: the API in front of `upres worker` machines."""
    data_dir = tmp_path / "data"
    key = create_key(data_dir, credits=CREDITS, env=env)
    serve = Serve(data_dir, port=free_port(), env={**env, "UPRES_WORKER_CONCURRENCY": "0"})
    serve.start()
    client = Client(serve.base_url, key.secret)
    try:
        task = client.submit(videos.url("/short.mp4"))
        time.sleep(2)
        assert client.task(task["id"])["status"] == "pending"
    finally:
        client.close()
        serve.stop()


def test_hostile_edges_answer_in_the_envelope_and_store_nothing(
    client: Client, videos: LocalHttpServer, service: tuple[Serve, CreatedKey]
) -> None:
    """Issue 11 against the real process: no 500, every code the spec's."""
    before = client.credits()
    generations = "/v1/videos/generations"
    json_type = {"content-type": "application/json"}

    def code(response: httpx.Response) -> tuple[int, str]:
        return response.status_code, response.json()["error"]["code"]

    for url in ("http://1.2.3.04/v.mp4", "http://0177.0.0.1/v", "http://h.example/\\ud800"):
        body = f'{{"model": "topaz-video-upscale", "video_urls": ["{url}"]}}'.encode()
        sent = client.request("POST", generations, content=body, headers=json_type)
        assert code(sent) == (400, "invalid_parameter")
        assert sent.json()["error"]["param"] == "video_urls"
    octal_hook = {
        "model": "topaz-video-upscale",
        "video_urls": [videos.url("/short.mp4")],
        "callback_url": "https://010.010.010.010/cb",
    }
    assert code(client.request("POST", generations, json=octal_hook)) == (400, "invalid_parameter")
    for raw in (b'{"model": "\xff"}', b"[" * 100_000 + b"]" * 100_000):
        sent = client.request("POST", generations, content=raw, headers=json_type)
        assert code(sent) == (400, "invalid_parameter")
    assert code(client.request("GET", "/nowhere")) == (404, "resource_not_found")
    assert client.credits() == before

    plain = {"model": "topaz-video-upscale", "video_urls": [videos.url("/short.mp4")]}
    blank = {"Idempotency-Key": ""}
    first = client.request("POST", generations, json=plain | {"callback_url": None}, headers=blank)
    second = client.request("POST", generations, json=plain | {"model_params": None}, headers=blank)
    assert (first.status_code, second.status_code) == (200, 200), second.text
    assert first.json()["id"] != second.json()["id"]
    for created in (first.json(), second.json()):
        client.cancel(created["id"])
    assert client.credits() == before
