"""A plain client of upres's task API (README, "The HTTP API"), as ``upres remote``
uses it: upload a file, submit it with an Idempotency-Key, poll the task, download
the result. Any server that speaks the same API will do.

Busy answers (429, 503) are retried after their ``Retry-After``; every other
error becomes RemoteError with the server's own code and message.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from upres.errors import RemoteError

API_MODEL = "topaz-video-upscale"
_BUSY = (429, 503)
_BUSY_TRIES = 5
_MAX_WAIT_S = 30.0
_TIMEOUT = httpx.Timeout(60.0, connect=10.0)
_CHUNK_BYTES = 1 << 20


@dataclass(frozen=True, kw_only=True)
class Submitted:
    """A task as ``POST /v1/videos/generations`` answered it; ``replayed`` when the
    Idempotency-Key had already made it."""

    task: dict[str, Any]
    replayed: bool


class ApiClient:
    """One server and key. Every method raises RemoteError."""

    def __init__(self, server: str, key: str) -> None:
        self._http = httpx.Client(
            base_url=server.rstrip("/"),
            headers={"Authorization": f"Bearer {key}"},
            timeout=_TIMEOUT,
        )

    def close(self) -> None:
        self._http.close()

    def upload(self, path: Path) -> str:
        """Upload ``path``; its ``upres-upload://`` URL."""

        def send() -> httpx.Response:
            with path.open("rb") as body:
                return self._http.post(
                    "/v1/uploads",
                    params={"filename": path.name},
                    content=iter(lambda: body.read(_CHUNK_BYTES), b""),
                    headers={
                        "Content-Type": "application/octet-stream",
                        "Content-Length": str(path.stat().st_size),
                    },
                )

        return str(self._json(send)["url"])

    def submit(self, video_url: str, *, factor: int, idempotency_key: str) -> Submitted:
        """Create the task, or find the one this key already created."""
        body = {
            "model": API_MODEL,
            "video_urls": [video_url],
            "model_params": {"upscale_factor": str(factor)},
        }
        headers = {"Idempotency-Key": idempotency_key}
        response = self._call(
            lambda: self._http.post("/v1/videos/generations", json=body, headers=headers)
        )
        replayed = response.headers.get("Idempotent-Replayed") == "true"
        return Submitted(task=response.json(), replayed=replayed)

    def task(self, task_id: str) -> dict[str, Any]:
        return self._json(lambda: self._http.get(f"/v1/tasks/{task_id}"))

    def download(self, url: str, destination: Path) -> None:
        """The result at ``url`` into ``destination``. The link is signed: it is fetched
        without the key, which never goes to another host."""
        try:
            with httpx.stream("GET", url, timeout=_TIMEOUT) as response:
                _check(response)
                with destination.open("wb") as out:
                    for chunk in response.iter_bytes(_CHUNK_BYTES):
                        out.write(chunk)
        except httpx.HTTPError as exc:
            raise RemoteError(f"Downloading the result failed: {exc}") from exc

    def _json(self, send: Any) -> dict[str, Any]:
        data = self._call(send).json()
        if not isinstance(data, dict):
            raise RemoteError("The server answered something that is not a JSON object.")
        return data

    def _call(self, send: Any) -> httpx.Response:
        """``send()``, again after a busy answer's Retry-After."""
        for _ in range(_BUSY_TRIES):
            try:
                response: httpx.Response = send()
            except httpx.HTTPError as exc:
                raise RemoteError(f"Cannot reach the server: {exc}") from exc
            if response.status_code not in _BUSY:
                _check(response)
                return response
            time.sleep(_retry_after(response))
        _check(response)
        return response


def _retry_after(response: httpx.Response) -> float:
    try:
        return min(_MAX_WAIT_S, max(0.0, float(response.headers.get("Retry-After", "1"))))
    except ValueError:
        return 1.0


def _check(response: httpx.Response) -> None:
    if response.is_success:
        return
    response.read()
    try:
        error = response.json()["error"]
        what = f"{error['code']}: {error['message']}"
    except (ValueError, KeyError, TypeError):
        what = response.text[:200] or response.reason_phrase
    status = response.status_code
    raise RemoteError(f"The server answered {status} ({what})", status=status)
