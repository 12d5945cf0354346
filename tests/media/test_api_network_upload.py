"""An uploaded video takes a network too: the upload is a real clip (the media tier)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.clips import make_clip
from tests.unit.api_harness import Api, running_api
from upres.domain.tasks import API_MODEL

GENERATE = "/v1/videos/generations"
ESTIMATE = "/v1/videos/generations/estimate"
CHOSEN = "realesr-animevideov3"


@pytest.fixture
def api(tmp_path: Path) -> Iterator[Api]:
    with running_api(tmp_path) as running:
        yield running


def test_an_uploaded_video_takes_a_network_too(api: Api, tmp_path: Path) -> None:
    clip = make_clip(tmp_path / "clip.mp4", frames=12, fps=12)
    with api.client() as client:
        url = client.post("/v1/uploads", content=clip.read_bytes()).json()["url"]
        chosen = {"model": API_MODEL, "video_urls": [url], "model_params": {"network": CHOSEN}}
        estimate = client.post(ESTIMATE, json=chosen).json()
        task = client.post(GENERATE, json=chosen).json()
        unknown = client.post(GENERATE, json={**chosen, "model_params": {"network": "x"}})

    assert estimate["network"] == task["task_info"]["network"] == CHOSEN
    assert api.store.get_task(task["id"]).input_url == url
    assert unknown.status_code == 400
