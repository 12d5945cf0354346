"""Hostile bytes against the real app: every answer is the spec's envelope and codes.

Not only JSON values: raw bytes, other encodings, broken UTF-8, lone
surrogates, deep nesting, huge numbers, odd paths and methods. Seeded, so a
failure replays; no answer may be a 500 or a code outside the spec's list.
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from tests.hostile import UNSENDABLE_URLS
from tests.unit.api_harness import RESULTS_BASE, Api, running_api
from upres.domain.tasks import API_MODEL

GENERATIONS = "/v1/videos/generations"
VALID = {"model": API_MODEL, "video_urls": ["https://videos.example.com/clip.mp4"]}
# What a submission may answer: created, refused as a parameter, unaffordable, too big.
SUBMIT_ANSWERS = {
    (200, None),
    (400, "invalid_parameter"),
    (402, "insufficient_quota"),
    (413, "request_too_large"),
}
SPEC_CODES = {
    "invalid_parameter",
    "invalid_task_id",
    "video_probe_failed",
    "unauthorized",
    "insufficient_quota",
    "model_access_denied",
    "resource_not_found",
    "method_not_allowed",
    "task_not_cancellable",
    "idempotency_conflict",
    "result_expired",
    "request_too_large",
    "rate_limit_exceeded",
}


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Api]:
    with running_api(tmp_path_factory.mktemp("fuzz")) as running:
        yield running


def answer(response: httpx.Response) -> tuple[int, str | None]:
    """(status, error code), after checking the envelope of an error."""
    assert response.status_code != 500, response.text
    if response.status_code < 400:
        return response.status_code, None
    assert response.headers["content-type"] == "application/json", response.text
    error = response.json()["error"]
    assert set(error) <= {"code", "message", "type", "param"}
    assert error["message"]
    assert error["code"] in SPEC_CODES, error
    return response.status_code, error["code"]


def _nested(depth: int, opener: bytes, closer: bytes, inner: bytes = b"1") -> bytes:
    return opener * depth + inner + closer * depth


def _with(**fields: object) -> bytes:
    return json.dumps(VALID | fields).encode()


CRAFTED: dict[str, bytes] = {
    "not utf-8": b'{"model": "\xff\xfe", "video_urls": []}',
    "latin-1": '{"model": "topaz-video-upscal\xe9"}'.encode("latin-1"),
    "overlong utf-8": b'{"model": "\xc0\xaf"}',
    "utf-16": json.dumps(VALID).encode("utf-16"),
    "utf-32": json.dumps(VALID).encode("utf-32"),
    "nested arrays 100k": _nested(100_000, b"[", b"]"),
    "nested objects 100k": _nested(100_000, b'{"a":', b"}"),
    "nested in a field": _with(model_params=0).replace(b"0", _nested(50_000, b"[", b"]"), 1),
    "number of 5000 digits": _with(model_params={"upscale_factor": 0}).replace(
        b"0}", b"9" * 5000 + b"}"
    ),
    "NaN": _with(model_params={"upscale_factor": 0}).replace(b"0}", b"NaN}"),
    "1e999": _with(model_params={"upscale_factor": 0}).replace(b"0}", b"1e999}"),
    "lone surrogate in the model": b'{"model": "\\ud800", "video_urls": ["https://a.example/v"]}',
    "lone surrogate in a key": b'{"\\udfff": 1, "model": "x"}',
    "NUL in the model": _with(model=API_MODEL + "\x00"),
    "callback of octal": _with(callback_url="https://010.010.010.010/cb"),
    "callback with a surrogate": _with(callback_url="https://h.example/\ud800"),
    "video_urls an object": _with(video_urls={"a": 1}),
    "video_urls of numbers": _with(video_urls=[1]),
    "empty": b"",
    "null": b"null",
    "a list": b"[]",
    "a string": b'"x"',
    "trailing garbage": json.dumps(VALID).encode() + b" x",
    "truncated": json.dumps(VALID).encode()[:-3],
    "only whitespace": b" \t\r\n ",
    **{f"unsendable {i}": _with(video_urls=[url]) for i, url in enumerate(UNSENDABLE_URLS)},
}


@pytest.mark.parametrize("body", CRAFTED.values(), ids=CRAFTED.keys())
@pytest.mark.parametrize("content_type", ["application/json", "text/plain", None])
def test_crafted_bodies_answer_in_the_envelope(
    api: Api, body: bytes, content_type: str | None
) -> None:
    headers = {"content-type": content_type} if content_type else {}
    with api.client() as client:
        response = client.post(GENERATIONS, content=body, headers=headers)
    assert answer(response) in SUBMIT_ANSWERS


def test_unparsable_bodies_are_invalid_parameter_not_http_400(api: Api) -> None:
    with api.client() as client:
        for name in ("not utf-8", "nested arrays 100k", "number of 5000 digits"):
            response = client.post(GENERATIONS, content=CRAFTED[name])
            assert answer(response) == (400, "invalid_parameter"), name


def _mutations(rng: random.Random) -> Iterator[bytes]:
    """Random edits of a valid body: flipped, dropped, inserted and repeated bytes."""
    seed = json.dumps(VALID | {"model_params": {"upscale_factor": "4"}}).encode()
    for _ in range(150):
        body = bytearray(seed)
        for _ in range(rng.randint(1, 6)):
            at = rng.randrange(len(body))
            edit = rng.choice(("flip", "drop", "insert", "repeat"))
            if edit == "flip":
                body[at] = rng.randrange(256)
            elif edit == "drop":
                del body[at]
            elif edit == "insert":
                body[at:at] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 4)))
            else:
                body[at:at] = body[at : at + rng.randint(1, 8)] * rng.randint(2, 50)
        yield bytes(body)


def test_random_byte_mutations_answer_in_the_envelope(api: Api) -> None:
    rng = random.Random(11)
    with api.client() as client:
        for body in _mutations(rng):
            response = client.post(GENERATIONS, content=body)
            assert answer(response) in SUBMIT_ANSWERS, body


@pytest.mark.parametrize(
    ("method", "path", "expected"),
    [
        ("GET", "/nowhere", (404, "resource_not_found")),
        ("GET", "/v1/tasks/%ff%fe", (400, "invalid_task_id")),
        ("GET", "/v1/tasks/task-unified-1-%ED%A0%80", (404, "resource_not_found")),
        ("GET", "/v1/tasks/task-unified-1-%00", (404, "resource_not_found")),
        ("GET", "/v1/files/%ff", (404, "resource_not_found")),
        ("DELETE", "/v1/tasks/task-unified-1-abcdefgh", (405, "method_not_allowed")),
        ("PUT", GENERATIONS, (405, "method_not_allowed")),
        ("POST", "/v1/credits", (405, "method_not_allowed")),
    ],
)
def test_odd_paths_and_methods_answer_in_the_envelope(
    api: Api, method: str, path: str, expected: tuple[int, str]
) -> None:
    with api.client() as client:
        assert answer(client.request(method, path)) == expected


@pytest.mark.parametrize(
    "authorization", [b"Bearer \xff\xfe", b"Bearer", b"Basic abc", b"Bearer " + b"k" * 8000]
)
def test_odd_authorization_headers_are_401(api: Api, authorization: bytes) -> None:
    with httpx.Client(base_url=api.base_url) as client:
        response = client.get("/v1/credits", headers={"Authorization": authorization})
    assert answer(response) == (401, "unauthorized")


def test_files_answer_in_the_envelope(api: Api, tmp_path: Path) -> None:
    source = tmp_path / "r.mp4"
    source.write_bytes(b"\0" * 1000)
    api.storage.put(source, "task-unified-1-abcdefgh/attempt-1.mp4")
    tomorrow = datetime.now(UTC) + timedelta(days=1)
    link = api.storage.url("task-unified-1-abcdefgh/attempt-1.mp4", expires_at=tomorrow)
    path = link.removeprefix(RESULTS_BASE)
    with httpx.Client(base_url=api.base_url) as client:
        for bad in ("bytes=5-1", "items=0-1", "bytes", "bytes=-"):
            assert answer(client.get(path, headers={"Range": bad})) == (400, "invalid_parameter")
        outside = client.get(path, headers={"Range": "bytes=5000-"})
    assert answer(outside) == (416, "invalid_parameter")
    assert outside.headers["content-range"] == "bytes */1000"
