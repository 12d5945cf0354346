"""The API's read path under load: ``GET /v1/tasks/{id}`` at 1, 8 and 32
concurrent keep-alive clients, in rounds that alternate it with the floor (a
bare Starlette route doing the same two indexed lookups on the same SQLite
database, ``bench/_bare_api.py``), then the same reads while 60 submissions
probe a URL that never answers.

The server is ``upres serve --workers 0`` in its own process, as deployed; the
clients are a minimal asyncio HTTP/1.1 client in this process, so that they
cost the CPU little. Writes its table into docs/BENCHMARKS.md
(``make bench-api``).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import psutil

# Run as a script, the folder on sys.path is bench/; the harness imports itself as `bench`.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._report import write_section
from testkit.net import free_port

from upres.config import Settings
from upres.domain.records import NewTask
from upres.domain.tasks import Factor, new_task_id
from upres.services.keys import KeyService
from upres.wiring import open_store

DOC = Path(__file__).resolve().parent.parent / "docs" / "BENCHMARKS.md"
HOST = "127.0.0.1"


@dataclass(frozen=True, kw_only=True)
class Level:
    """One target at one concurrency: requests per second and latencies."""

    target: str
    clients: int
    requests: int
    errors: int
    per_s: float
    p50_ms: float
    p99_ms: float
    server_cpu_ms: float


@dataclass(frozen=True, kw_only=True)
class Fixture:
    """What the reads ask for: a key and one of its tasks."""

    secret: str
    task_id: str


def seed(data_dir: Path) -> Fixture:
    """A database with one account, its key and one task."""
    store = open_store(Settings(data_dir=data_dir))
    try:
        created = KeyService(store).create(credits=10_000)
        task = store.create_task(
            NewTask(
                id=new_task_id(int(time.time())),
                account_id=created.key.account_id,
                model="topaz-video-upscale",
                factor=Factor.X2,
                input_url="https://example.com/v.mp4",
                callback_url=None,
                video_duration_s=9.0,
                credits_reserved=144.0,
                estimated_time_s=42,
                user_group="default",
                created_at=datetime.now(UTC),
            )
        )
    finally:
        store.close()
    return Fixture(secret=created.secret, task_id=task.id)


@contextmanager
def server(command: list[str], *, port: int, env: dict[str, str]) -> Iterator[psutil.Process]:
    """A server process, up once ``GET /`` answers anything; stopped after."""
    process = subprocess.Popen(
        command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        _wait_up(port, process)
        yield psutil.Process(process.pid)
    finally:
        process.terminate()
        process.wait(30)


def _wait_up(port: int, process: subprocess.Popen[bytes]) -> None:
    end = time.monotonic() + 180
    while time.monotonic() < end:
        if process.poll() is not None:
            raise SystemExit(f"server exited with {process.returncode}: {process.args}")
        try:
            httpx.get(f"http://{HOST}:{port}/", timeout=1)
            return
        except httpx.HTTPError:
            time.sleep(0.2)
    raise SystemExit(f"server did not start: {process.args}")


def cpu_seconds(process: psutil.Process) -> float:
    """CPU time of the process and its children (uvicorn worker processes)."""
    total = 0.0
    for each in [process, *process.children(recursive=True)]:
        times = each.cpu_times()
        total += times.user + times.system
    return total


def get_request(path: str, secret: str) -> bytes:
    return (
        f"GET {path} HTTP/1.1\r\nHost: {HOST}\r\nAuthorization: Bearer {secret}\r\n\r\n"
    ).encode()


async def _exchange(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, raw: bytes) -> int:
    writer.write(raw)
    head = await reader.readuntil(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            length = int(line.split(b":", 1)[1])
    await reader.readexactly(length)
    return int(head.split(b" ", 2)[1])


async def _client(port: int, raw: bytes, until: float, out: list[float], errors: list[int]) -> None:
    reader, writer = await asyncio.open_connection(HOST, port)
    try:
        while (started := time.perf_counter()) < until:
            status = await _exchange(reader, writer, raw)
            out.append(time.perf_counter() - started)
            if status != 200:
                errors.append(status)
    finally:
        writer.close()


async def load(port: int, raw: bytes, *, clients: int, seconds: float) -> tuple[list[float], int]:
    """Latencies of every request ``clients`` keep-alive clients made in ``seconds``."""
    latencies: list[float] = []
    errors: list[int] = []
    until = time.perf_counter() + seconds
    await asyncio.gather(*(_client(port, raw, until, latencies, errors) for _ in range(clients)))
    return latencies, len(errors)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


async def level(
    target: str, port: int, raw: bytes, process: psutil.Process, *, clients: int, seconds: float
) -> Level:
    await load(port, raw, clients=clients, seconds=min(0.5, seconds))  # warm connections, caches
    cpu_before = cpu_seconds(process)
    latencies, errors = await load(port, raw, clients=clients, seconds=seconds)
    cpu = cpu_seconds(process) - cpu_before
    return Level(
        target=target,
        clients=clients,
        requests=len(latencies),
        errors=errors,
        per_s=len(latencies) / seconds,
        p50_ms=percentile(latencies, 0.5) * 1000,
        p99_ms=percentile(latencies, 0.99) * 1000,
        server_cpu_ms=cpu / max(1, len(latencies)) * 1000,
    )


@contextmanager
def hanging_input() -> Iterator[tuple[str, list[Any]]]:
    """An HTTP server on loopback that accepts and never answers, in a thread."""
    import socket  # noqa: PLC0415
    import threading  # noqa: PLC0415

    listener = socket.create_server((HOST, 0), backlog=1024)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        listener.settimeout(0.2)
        while not stop.is_set():
            try:
                held.append(listener.accept()[0])
            except TimeoutError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield f"http://{HOST}:{listener.getsockname()[1]}/never.mp4", held
    finally:
        stop.set()
        thread.join()
        listener.close()
        for connection in held:
            connection.close()


async def slow_probes(port: int, secret: str, url: str, count: int) -> list[asyncio.Task[object]]:
    """``count`` submissions of ``url``, sent and left waiting for their answers."""
    body = json.dumps({"model": "topaz-video-upscale", "video_urls": [url]}).encode()
    raw = (
        f"POST /v1/videos/generations HTTP/1.1\r\nHost: {HOST}\r\n"
        f"Authorization: Bearer {secret}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode() + body

    async def submit() -> object:
        reader, writer = await asyncio.open_connection(HOST, port)
        try:
            return await _exchange(reader, writer, raw)
        finally:
            writer.close()

    return [asyncio.ensure_future(submit()) for _ in range(count)]


def upres_env(data_dir: Path, args: argparse.Namespace) -> dict[str, str]:
    return {
        **os.environ,
        "UPRES_DATA_DIR": str(data_dir),
        "UPRES_RATE_LIMIT_PER_MINUTE": "1000000000",
        "UPRES_ALLOW_PRIVATE_NETWORKS": "true",
        "UPRES_PROBE_TIMEOUT_S": "600",
        "UPRES_SUBMIT_THREADS": str(args.probes),
        "UPRES_SUBMIT_MAX_PER_KEY": str(args.probes),
        "UPRES_API_WORKERS": str(args.api_workers),
        "UPRES_ACCESS_LOG": str(args.access_log).lower(),
    }


async def run(args: argparse.Namespace, data_dir: Path) -> dict[str, object]:
    fixture = seed(data_dir)
    raw = get_request(f"/v1/tasks/{fixture.task_id}", fixture.secret)
    levels: list[Level] = []
    bare_port, upres_port = free_port(), free_port()
    bare_cmd = [sys.executable, "-m", "uvicorn", "bench._bare_api:app", "--port", str(bare_port)]
    bare_cmd += ["--log-level", "warning", "--no-access-log"]
    bare_env = {**os.environ, "BARE_API_DB": str(data_dir / "upres.db")}
    upres_cmd = [sys.executable, "-m", "upres.cli", "serve", "--workers", "0"]
    upres_cmd += ["--port", str(upres_port), "--data-dir", str(data_dir)]
    with (
        server(bare_cmd, port=bare_port, env=bare_env) as bare,
        server(upres_cmd, port=upres_port, env=upres_env(data_dir, args)) as upres,
    ):
        # Rounds alternate the two servers, so that a neighbour's burst on a shared
        # machine lands on both rather than on one row.
        for _ in range(args.rounds):
            for clients in args.clients:
                for target, port, process in (
                    ("bare", bare_port, bare),
                    ("upres", upres_port, upres),
                ):
                    levels.append(
                        await level(
                            target, port, raw, process, clients=clients, seconds=args.seconds
                        )
                    )
        probing = await under_probes(args, upres_port, raw, upres, fixture.secret)
    return {"levels": levels, "probes": probing}


async def under_probes(
    args: argparse.Namespace, port: int, raw: bytes, process: psutil.Process, secret: str
) -> dict[str, object]:
    """Reads at ``args.probe_clients`` clients, idle and with ``args.probes`` probes waiting."""
    clients, seconds = args.probe_clients, args.seconds
    idle = await level("upres idle", port, raw, process, clients=clients, seconds=seconds)
    with hanging_input() as (url, held):
        submissions = await slow_probes(port, secret, url, args.probes)
        deadline = time.monotonic() + 30
        while len(held) < args.probes and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
        busy = await level("upres probing", port, raw, process, clients=clients, seconds=seconds)
        waiting = len(held)
        for submission in submissions:
            submission.cancel()
        await asyncio.gather(*submissions, return_exceptions=True)
    return {"idle": idle, "busy": busy, "probes_waiting": waiting}


def _row(clients: int, bare: list[Level], ours: list[Level]) -> str:
    """Medians over the rounds; the ratio's range is each round's upres / bare."""
    ratios = [mine.per_s / floor.per_s for floor, mine in zip(bare, ours, strict=True)]

    def median(levels: list[Level], field: str, digits: int) -> str:
        return f"{statistics.median(getattr(lv, field) for lv in levels):.{digits}f}"

    bare_rate = statistics.median(lv.per_s for lv in bare)
    our_rate = statistics.median(lv.per_s for lv in ours)
    return (
        f"| {clients} | {bare_rate:.0f} | {our_rate:.0f} | {our_rate / bare_rate:.0%}"
        f" ({min(ratios):.0%}-{max(ratios):.0%})"
        f" | {median(bare, 'p50_ms', 1)} / {median(bare, 'p99_ms', 1)}"
        f" | {median(ours, 'p50_ms', 1)} / {median(ours, 'p99_ms', 1)}"
        f" | {median(bare, 'server_cpu_ms', 2)}, {median(ours, 'server_cpu_ms', 2)} |"
    )


def table(result: dict[str, object], args: argparse.Namespace) -> str:
    levels = result["levels"]
    assert isinstance(levels, list)
    lines = [
        f"Measured {datetime.now(UTC):%Y-%m-%d %H:%M} UTC on {os.cpu_count()} cores"
        f" (load average {os.getloadavg()[0]:.1f} at the end), {args.rounds} rounds of"
        f" {args.seconds:g} s per row alternating the servers (medians; the ratio's"
        f" range over the rounds in brackets), SQLite, `UPRES_API_WORKERS={args.api_workers}`,"
        f" `UPRES_ACCESS_LOG={str(args.access_log).lower()}`.",
        "",
        "| clients | bare req/s | upres req/s | upres / bare | bare p50 / p99 ms"
        " | upres p50 / p99 ms | server CPU ms/req: bare, upres |",
        "|---|---|---|---|---|---|---|",
    ]
    for clients in args.clients:
        bare = [lv for lv in levels if lv.target == "bare" and lv.clients == clients]
        ours = [lv for lv in levels if lv.target == "upres" and lv.clients == clients]
        lines.append(_row(clients, bare, ours))
    probes = result["probes"]
    assert isinstance(probes, dict)
    idle, busy = probes["idle"], probes["busy"]
    lines += [
        "",
        f"Reads at {args.probe_clients} clients while {probes['probes_waiting']} submissions"
        f" wait on a URL that never answers: p99 {busy.p99_ms:.1f} ms against"
        f" {idle.p99_ms:.1f} ms idle ({busy.p99_ms / idle.p99_ms:.2f}x),"
        f" {busy.per_s:.0f} against {idle.per_s:.0f} req/s, {busy.errors} errors.",
    ]
    return "\n".join(lines)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "--clients", type=lambda s: [int(x) for x in s.split(",")], default=[1, 8, 32]
    )
    parser.add_argument("--seconds", type=float, default=3.0, help="per row and round")
    parser.add_argument("--rounds", type=int, default=3, help="alternations of the servers")
    parser.add_argument("--probes", type=int, default=60, help="slow submissions in flight")
    parser.add_argument("--probe-clients", type=int, default=8)
    parser.add_argument("--api-workers", type=int, default=1, help="UPRES_API_WORKERS")
    parser.add_argument(
        "--access-log", action="store_true", help="UPRES_ACCESS_LOG (the floor logs nothing)"
    )
    parser.add_argument("--doc", type=Path, default=DOC)
    parser.add_argument("--no-doc", action="store_true", help="print only")
    parser.add_argument("--json", action="store_true")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="upres-api-bench-") as folder:
        result = asyncio.run(run(args, Path(folder)))
    text = table(result, args)
    if args.json:
        print(json.dumps(result, default=asdict, indent=1))
    else:
        print(text)
    if not args.no_doc:
        section = "api" if args.api_workers == 1 else f"api-workers-{args.api_workers}"
        write_section(args.doc, section, text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
