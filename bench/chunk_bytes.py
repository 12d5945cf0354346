"""Chunk bytes bench: how much of the stored input each chunk worker reads.

One long clip (a camera over photographs with AAC, ``--gop`` frames between
keyframes) is stored once, in local storage or with ``--seaweedfs`` on a real
S3 server (SeaweedFS's ``weed mini``, ``testkit.seaweedfs``). For each count
of ``--workers`` N, the clip is cut into N chunks (``cut_spans`` with
``chunk_seconds`` = duration / N: one chunk per worker), and each chunk runs
the real ``upscale_chunk`` on a ``RangedInput`` of the stored file, as a
chunk worker does, with the temporal stage's pre-roll (``DEFAULT_PRE_ROLL``)
and bicubic 2x (the network changes nothing of what is read). The bytes each
worker fetched are counted by the storage's reader; before ranged reads, each
worker copied the whole file.

    .venv/bin/python bench/chunk_bytes.py                 # 60 s 256x144, local storage
    .venv/bin/python bench/chunk_bytes.py --seaweedfs     # the same over S3 ranged GETs
    .venv/bin/python bench/chunk_bytes.py --seconds 30 --no-doc   # a quick look

Results go between the ``throughput:chunk-bytes`` markers of docs/BENCHMARKS.md
(``--seaweedfs``: ``throughput:chunk-bytes-s3``).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

# Run as a script, the folder on sys.path is bench/; the harness imports itself as `bench`.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import _report
from bench._clips import ClipSpec, make_clip, parse_size
from testkit.chunk_reads import run_chunks
from testkit.seaweedfs import seaweedfs

from upres.domain.media import MediaLimits
from upres.inputs.probe import probe
from upres.inputs.ranged import DEFAULT_BLOCK
from upres.pipeline.chunks import DEFAULT_PRE_ROLL, cut_spans
from upres.storage.base import ResultStorage
from upres.storage.local import LocalStorage
from upres.storage.s3 import S3Storage, s3_client

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DOC = ROOT / "docs" / "BENCHMARKS.md"
_KEY = "task-bench/chunks/source"
_MB = 1e6


@dataclass(frozen=True, kw_only=True)
class Row:
    """One worker count: the bytes each worker (one chunk each) read."""

    workers: int
    chunks: int
    reads: tuple[int, ...]


def measure(storage: ResultStorage, clip: Path, workers: Sequence[int], folder: Path) -> list[Row]:
    """For each count in ``workers``: the clip in that many chunks, each run once."""
    duration = probe(clip, limits=MediaLimits()).duration_s
    rows = []
    for count in workers:
        spans = cut_spans(clip, chunk_seconds=duration / count)
        parts = folder / f"w{count}"
        parts.mkdir()
        reads = run_chunks(storage, _KEY, spans, parts, pre_roll=DEFAULT_PRE_ROLL)
        rows.append(Row(workers=count, chunks=len(spans), reads=tuple(r.bytes_read for r in reads)))
        print(f"{count} workers: {[round(r / _MB, 2) for r in rows[-1].reads]} MB", flush=True)
    return rows


def table(rows: Sequence[Row], size: int) -> str:
    lines = [
        "| workers (one chunk each) | read per worker | share of the file | all workers "
        "| whole copies (before) |",
        "|---|---|---|---|---|",
    ]
    for row in rows:
        low, high = min(row.reads), max(row.reads)
        mean = statistics.fmean(row.reads)
        lines.append(
            f"| {row.workers} | {low / _MB:.2f}-{high / _MB:.2f} MB (mean {mean / _MB:.2f}) "
            f"| {low / size:.0%}-{high / size:.0%} "
            f"| {sum(row.reads) / _MB:.2f} MB ({sum(row.reads) / size:.2f}x the file) "
            f"| {row.workers * size / _MB:.2f} MB ({row.workers}x) |"
        )
    return "\n".join(lines)


def document(rows: Sequence[Row], spec: ClipSpec, clip: Path, where: str) -> str:
    size = clip.stat().st_size
    when = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    return (
        f"Measured {when} with {where}: a {spec.frames / spec.fps:g} s "
        f"{spec.width}x{spec.height} clip ({spec.frames} frames, x264 CRF {spec.crf}, noise "
        f"{spec.noise:g}, a keyframe every {spec.gop} frames, AAC; {size / _MB:.2f} MB, "
        f"{size * 8 / (spec.frames / spec.fps) / _MB:.1f} Mbit/s), read in "
        f"{DEFAULT_BLOCK // 1024} KiB blocks, {DEFAULT_PRE_ROLL} pre-roll frames per chunk.\n\n"
        + table(rows, size)
    )


@contextmanager
def stored(clip: Path, folder: Path, *, s3: bool) -> Iterator[tuple[ResultStorage, str]]:
    """``clip`` stored under the bench's key, with a line saying where."""
    storage: ResultStorage
    if s3:
        with seaweedfs(folder / "seaweedfs") as server:
            bucket = server.new_bucket()
            # boto3 takes the server's key from its usual chain.
            os.environ["AWS_ACCESS_KEY_ID"] = server.access_key
            os.environ["AWS_SECRET_ACCESS_KEY"] = server.secret_key
            client = s3_client(endpoint_url=server.endpoint_url, region=server.region)
            storage = S3Storage(client, bucket=bucket)
            storage.put(clip, _KEY)
            yield storage, "S3 ranged GETs on SeaweedFS (weed mini, loopback)"
        return
    storage = LocalStorage(folder / "results", base_url="http://127.0.0.1", secret=b"b" * 32)
    storage.put(clip, _KEY)
    yield storage, "local storage (positioned reads)"


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    # Small frames at a film's bytes per GOP (~3 Mbit/s): reading is what is measured,
    # and upscaling larger frames would only make the bench slower.
    parser.add_argument("--size", default="256x144")
    parser.add_argument("--crf", type=int, default=8)
    parser.add_argument("--noise", type=float, default=6.0)
    parser.add_argument("--seconds", type=int, default=60)
    parser.add_argument("--gop", type=int, default=48, help="frames between keyframes")
    parser.add_argument("--workers", default="1,2,4")
    parser.add_argument("--seaweedfs", action="store_true", help="store on a real S3 server")
    parser.add_argument("--clips", type=Path, default=None, help="keep the clip in this folder")
    parser.add_argument("--doc", type=Path, default=DEFAULT_DOC)
    parser.add_argument("--no-doc", action="store_true")
    args = parser.parse_args(argv)
    width, height = parse_size(args.size)
    spec = ClipSpec(
        width=width,
        height=height,
        frames=args.seconds * 24,
        crf=args.crf,
        noise=args.noise,
        gop=args.gop,
    )
    workers = [int(n) for n in args.workers.split(",")]
    with tempfile.TemporaryDirectory(prefix="upres-chunk-bytes-") as scratch:
        clip = make_clip(spec, args.clips or Path(scratch))
        with stored(clip, Path(scratch), s3=args.seaweedfs) as (storage, where):
            rows = measure(storage, clip, workers, Path(scratch))
        body = document(rows, spec, clip, where)
    print(body)
    if not args.no_doc:
        name = "chunk-bytes-s3" if args.seaweedfs else "chunk-bytes"
        _report.write_section(args.doc, name, body)


if __name__ == "__main__":
    main()
