"""One long clip through ``upres serve``, end to end, in chunks: with 1 and 2
worker processes, against the single pass of the same clip in the same run
(chunk length above the clip's). Each case is a fresh service on a fresh data
directory; a one-second clip runs first so the workers have their models
loaded, then the clock runs from submission to ``completed``. Writes its
section of docs/BENCHMARKS.md (``.venv/bin/python bench/chunks_service.py``).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from fractions import Fraction
from pathlib import Path

import av
import httpx
import numpy as np
import psutil

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._report import write_section
from testkit.net import free_port

from upres.pipeline.chunks import cut_spans

DOC = Path(__file__).resolve().parent.parent / "docs" / "BENCHMARKS.md"
UPRES = [sys.executable, "-m", "upres.cli"]


@dataclass(frozen=True, kw_only=True)
class Case:
    label: str
    workers: int
    chunk_seconds: float
    chunks: int
    wall_s: float
    cpu_s: float


def make_source(path: Path, *, size: tuple[int, int], fps: int, seconds: float) -> Path:
    """A moving pattern with a keyframe every second (chunks are cut on keyframes)."""
    width, height = size
    ys, xs = np.mgrid[0:height, 0:width]
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=fps, options={"g": str(fps), "crf": "20"})
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        for index in range(round(seconds * fps)):
            phase = index / fps
            rgb = np.stack(
                [
                    (xs * 3 + index * 4) % 256,
                    (ys * 5 + np.sin(phase + xs / 17) * 40) % 256,
                    ((xs + ys) * 2 + index) % 256,
                ],
                axis=-1,
            ).astype(np.uint8)
            frame = av.VideoFrame.from_ndarray(rgb, format="rgb24")
            frame.pts = index
            frame.time_base = Fraction(1, fps)
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
    return path


@contextmanager
def service(data_dir: Path, env: dict[str, str]) -> Iterator[tuple[str, str, psutil.Process]]:
    """``upres serve`` on a fresh data directory: its base URL, an API key and its process."""
    made = subprocess.run(
        [*UPRES, "keys", "create", "--data-dir", str(data_dir), "--credits", "1000000"],
        capture_output=True,
        text=True,
        env=env,
        check=True,
    )
    key = made.stdout.strip().splitlines()[-1]
    port = free_port()
    process = subprocess.Popen(
        [*UPRES, "serve", "--port", str(port), "--data-dir", str(data_dir)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        until(lambda: _healthy(base), timeout_s=300)
        yield base, key, psutil.Process(process.pid)
    finally:
        process.terminate()
        process.wait(60)


def _healthy(base: str) -> bool:
    try:
        return httpx.get(f"{base}/healthz", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def until(condition: Callable[[], bool], *, timeout_s: float) -> None:
    end = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > end:
            raise TimeoutError("timed out")
        time.sleep(0.25)


def submit(http: httpx.Client, clip: Path) -> str:
    """Upload ``clip`` and submit it at 2x; the task id."""
    upload = http.post(
        "/v1/uploads", content=clip.read_bytes(), headers={"Content-Type": "video/mp4"}
    )
    body = {
        "model": "topaz-video-upscale",
        "video_urls": [upload.json()["url"]],
        "model_params": {"upscale_factor": "2"},
    }
    return str(http.post("/v1/videos/generations", json=body).json()["id"])


def wait(http: httpx.Client, task_ids: list[str]) -> None:
    """Until every task completed. Raises RuntimeError when one ends otherwise."""

    def ended() -> bool:
        statuses = [http.get(f"/v1/tasks/{task_id}").json()["status"] for task_id in task_ids]
        if any(status in ("failed", "cancelled") for status in statuses):
            raise RuntimeError(f"a task ended otherwise: {statuses}")
        return all(status == "completed" for status in statuses)

    until(ended, timeout_s=3600)


def run_case(
    label: str, source: Path, warm: Path, *, workers: int, chunk_s: float, args: argparse.Namespace
) -> Case:
    with tempfile.TemporaryDirectory() as tmp:
        env = {
            **os.environ,
            "UPRES_WORKER_CONCURRENCY": str(workers),
            "UPRES_CHUNK_SECONDS": str(chunk_s),
            "UPRES_MODEL": args.model,
            "UPRES_DEVICE": "cpu",
            "UPRES_TEMPORAL": "false",
            "UPRES_TORCH_THREADS": str(args.threads),
            "UPRES_INITIAL_CREDITS": "0",
            "UPRES_ACCESS_LOG": "false",
            "UPRES_RATE_LIMIT_PER_MINUTE": "100000",
        }
        with service(Path(tmp), env) as (base, key, serve):
            headers = {"Authorization": f"Bearer {key}"}
            with httpx.Client(base_url=base, headers=headers, timeout=60) as http:
                # One short task per worker at once: every worker loads its model.
                wait(http, [submit(http, warm) for _ in range(workers)])
                started, cpu_before = time.monotonic(), cpu_seconds(serve)
                wait(http, [submit(http, source)])
                wall = time.monotonic() - started
                cpu = cpu_seconds(serve) - cpu_before
    chunks = len(cut_spans(source, chunk_seconds=chunk_s))
    print(f"{label}: {wall:.1f} s, {cpu:.1f} CPU s ({chunks} chunks)", flush=True)
    return Case(
        label=label, workers=workers, chunk_seconds=chunk_s, chunks=chunks, wall_s=wall, cpu_s=cpu
    )


def cpu_seconds(process: psutil.Process) -> float:
    """User and system CPU time of ``process`` and its living descendants."""
    total = 0.0
    for member in [process, *process.children(recursive=True)]:
        try:
            times = member.cpu_times()
        except psutil.NoSuchProcess:
            continue
        total += times.user + times.system
    return total


def report(cases: list[Case], args: argparse.Namespace, load: tuple[float, float, float]) -> str:
    base = cases[0].wall_s
    when = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    lines = [
        f"Measured {when} on the CPU ({os.cpu_count()} cores, shared; load average at "
        f"start {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}). Clip: {args.size} at "
        f"{args.fps} fps, {args.seconds:g} s, a keyframe a second; 2x with {args.model}, "
        f"temporal stage off, {args.threads} torch thread(s) per worker process.",
        "",
        "| case | worker processes | chunk seconds | chunks | wall s (submit -> completed) "
        "| against the single pass | CPU s of the service |",
        "|---|---|---|---|---|---|---|",
    ]
    for case in cases:
        lines.append(
            f"| {case.label} | {case.workers} | {case.chunk_seconds:g} | {case.chunks} "
            f"| {case.wall_s:.1f} | {base / case.wall_s:.2f}x | {case.cpu_s:.1f} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--size", default="320x180")
    parser.add_argument("--fps", type=int, default=24)
    parser.add_argument("--seconds", type=float, default=40.0)
    parser.add_argument("--chunk-seconds", type=float, default=10.0)
    parser.add_argument("--model", default="realesr-animevideov3")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    width, height = (int(part) for part in args.size.split("x"))
    load = os.getloadavg()
    with tempfile.TemporaryDirectory() as tmp:
        source = make_source(
            Path(tmp) / "long.mp4", size=(width, height), fps=args.fps, seconds=args.seconds
        )
        warm = make_source(Path(tmp) / "warm.mp4", size=(width, height), fps=args.fps, seconds=1)
        whole = args.seconds * 10
        cases = [
            run_case("single pass", source, warm, workers=1, chunk_s=whole, args=args),
            run_case(
                "chunks, 1 worker", source, warm, workers=1, chunk_s=args.chunk_seconds, args=args
            ),
            run_case(
                "chunks, 2 workers", source, warm, workers=2, chunk_s=args.chunk_seconds, args=args
            ),
        ]
    body = report(cases, args, load)
    print(body)
    if not args.no_write:
        write_section(DOC, "service", body, prefix="chunks")


if __name__ == "__main__":
    main()
