"""``upres serve`` with ``UPRES_DEVICE=vulkan``: the supervisor puts its worker on a
Vulkan device and a task completes through the ncnn runtime there.

On CI the only Vulkan device is Mesa's llvmpipe (asked for by name, it is used);
the clip is tiny. Marked ``vulkan``: skipped only when the machine has no Vulkan device at all.
"""

from __future__ import annotations

import os
from pathlib import Path

import av
import httpx
import pytest
from testkit.net import free_port

from tests.clips import make_clip
from tests.integration.serve_harness import Client, Serve, create_key
from tests.servers import LocalHttpServer, Route

pytestmark = [
    pytest.mark.slow,
    pytest.mark.vulkan,
]


def test_a_worker_on_vulkan_completes_a_task(tmp_path: Path) -> None:
    env = {
        **os.environ,
        "UPRES_ALLOW_PRIVATE_NETWORKS": "true",
        "UPRES_DEVICE": "vulkan",
        "UPRES_MODEL": "realesr-animevideov3",
        "UPRES_RATE_LIMIT_PER_MINUTE": "100000",
    }
    data_dir = tmp_path / "data"
    key = create_key(data_dir, credits=100, env=env)
    clip = make_clip(tmp_path / "in.mp4", width=32, height=24, frames=3, fps=3)
    with LocalHttpServer() as videos:
        videos.routes["/in.mp4"] = Route(body=clip.read_bytes())
        serve = Serve(data_dir, port=free_port(), env=env).start()
        client = Client(serve.base_url, key.secret)
        try:
            created = client.submit(videos.url("/in.mp4"), factor="2")
            done = client.wait_for(created["id"], "completed", "failed")
            with httpx.Client(timeout=30) as http:
                (tmp_path / "out.mp4").write_bytes(http.get(done["results"][0]).content)
        finally:
            client.close()
            serve.stop()
    assert done["status"] == "completed", done
    with av.open(str(tmp_path / "out.mp4")) as container:
        video = container.streams.video[0]
        assert (video.codec_context.width, video.codec_context.height) == (64, 48)
        assert sum(1 for _ in container.decode(video)) == 3
    log = "".join(serve.output)
    assert "GPU Vulkan 0" in log
    assert "runs on Vulkan device 0" in log
