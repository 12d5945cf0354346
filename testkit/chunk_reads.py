"""Chunks run on a stored input read in ranges, counting the bytes each reads:
what the chunk tests assert and ``bench/chunk_bytes.py`` measures.

Each chunk runs the real ``upscale_chunk`` on a ``RangedInput`` of the stored
file (``ResultStorage.reader``), as a chunk worker does, with bicubic 2x: the
network changes nothing of what is read, only the pre-roll does.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import av

from upres.domain.media import EncodeSettings, MediaLimits
from upres.domain.tasks import Factor
from upres.inputs.ranged import RangedInput
from upres.pipeline.chunks import ChunkSpan, join_chunks, upscale_chunk
from upres.pipeline.upscale import InterpolationUpscaler
from upres.pipeline.video_run import VideoOptions
from upres.storage.base import ResultStorage

FAST = VideoOptions(encode=EncodeSettings(preset="ultrafast"), limits=MediaLimits())


@dataclass(frozen=True, kw_only=True)
class ChunkRead:
    """One chunk's part and the bytes of the stored input it read."""

    span: ChunkSpan
    part: Path
    bytes_read: int


def run_chunks(
    storage: ResultStorage,
    key: str,
    spans: Sequence[ChunkSpan],
    folder: Path,
    *,
    pre_roll: int = 0,
) -> list[ChunkRead]:
    """Upscale each of ``spans`` of the input stored under ``key`` into a part in
    ``folder``, each through readers of its own, as separate workers would."""
    reads = []
    for span in spans:
        part = folder / f"part-{span.index:05d}.mp4"
        with RangedInput(partial(storage.reader, key), name=key) as source:
            upscale_chunk(
                source=source,
                span=span,
                destination=part,
                upscaler=InterpolationUpscaler(Factor.X2),
                options=FAST,
                pre_roll=pre_roll,
            )
        reads.append(ChunkRead(span=span, part=part, bytes_read=source.bytes_read))
    return reads


def join_parts(source: Path, reads: Sequence[ChunkRead], folder: Path) -> Path:
    """The parts of ``reads`` joined into ``folder``/joined.mp4 (``join_chunks``)."""
    parts = [read.part for read in reads]
    destination = folder / "joined.mp4"
    return join_chunks(source=source, parts=parts, destination=destination, options=FAST).path


def frame_times(path: Path) -> list[float]:
    """The presentation times of the video's frames, in seconds."""
    with av.open(str(path)) as container:
        return [float(frame.time) for frame in container.decode(video=0)]
