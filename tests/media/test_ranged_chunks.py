"""A chunk reads only its bytes of the stored input: the packets of its span
(with its pre-roll), the index and the first frames every chunk scans alike,
counted through the storage's reader; and the parts still join frame-exact."""

from __future__ import annotations

from pathlib import Path

import pytest
from testkit.chunk_reads import FAST, frame_times, join_parts, run_chunks

from tests.clips import make_clip
from upres.domain.tasks import Factor
from upres.errors import InputRefused, NotFound, StorageUnavailable
from upres.inputs.ranged import RangedInput
from upres.pipeline.chunks import DEFAULT_PRE_ROLL, cut_spans, upscale_chunk
from upres.pipeline.upscale import InterpolationUpscaler
from upres.storage.base import ResultStorage
from upres.storage.local import LocalStorage
from upres.storage.memory import MemoryStorage
from upres.storage.readers import BytesReader

KEY = "task-unified-1/chunks/source"
# 40 s at 24 fps with a keyframe every second: eight chunks of 120 frames. Every
# chunk also reads the first 60 frames (it scans them for the deinterlacing
# choice) and decodes from two keyframes before its span (open GOPs).
FRAMES, FPS, CHUNK_S = 960, 24, 5.0
# Detailed enough that the clip is megabytes: the reader's blocks are 256 KiB.
CLIP = {"g": "24", "crf": "4"}


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("ranged")
    return make_clip(
        folder / "in.mp4", width=128, height=96, frames=FRAMES, fps=FPS, encoder_options=CLIP
    )


def _local(tmp_path: Path) -> LocalStorage:
    return LocalStorage(tmp_path / "results", base_url="http://127.0.0.1", secret=b"k" * 32)


@pytest.mark.parametrize("pre_roll", [0, DEFAULT_PRE_ROLL], ids=["plain", "pre-roll"])
def test_each_of_eight_chunks_reads_well_under_half_of_the_stored_file(
    clip: Path, tmp_path: Path, pre_roll: int
) -> None:
    storage = _local(tmp_path)
    storage.put(clip, KEY)
    spans = cut_spans(clip, chunk_seconds=CHUNK_S)
    assert len(spans) == 8

    reads = run_chunks(storage, KEY, spans, tmp_path, pre_roll=pre_roll)

    size = clip.stat().st_size
    shares = [read.bytes_read / size for read in reads]
    assert all(0 < share < 0.4 for share in shares), shares
    # Together they read less than every chunk copying the whole file would.
    assert sum(shares) < 0.5 * len(spans)
    joined = join_parts(clip, reads, tmp_path)
    assert frame_times(joined) == pytest.approx(frame_times(clip), abs=1e-3)


def test_a_later_chunk_skips_the_packets_before_its_span(clip: Path, tmp_path: Path) -> None:
    storage = MemoryStorage()
    storage.put(clip, KEY)
    spans = cut_spans(clip, chunk_seconds=CHUNK_S)
    first, last = run_chunks(storage, KEY, [spans[0], spans[-1]], tmp_path)
    # The last chunk reads the first frames too (every chunk scans them for the
    # same deinterlacing choice), but not the packets between.
    assert last.bytes_read < 2 * first.bytes_read
    assert last.bytes_read < 0.4 * clip.stat().st_size


@pytest.mark.parametrize("make", [MemoryStorage, None], ids=["memory", "local"])
def test_a_missing_stored_input_is_not_found(tmp_path: Path, make: type | None) -> None:
    storage: ResultStorage = MemoryStorage() if make is not None else _local(tmp_path)
    with pytest.raises(NotFound):
        storage.reader(KEY)


def test_a_chunk_whose_stored_input_is_gone_is_refused(clip: Path, tmp_path: Path) -> None:
    """The chunk runner's reader says the input is gone, a lasting failure."""
    from upres.jobs.chunk_runner import _stored_input  # noqa: PLC0415

    source = _stored_input(_local(tmp_path), KEY)
    with source, pytest.raises(InputRefused, match="stored input is gone"):
        source.open()


class _FailsMidway(BytesReader):
    """A stored file whose storage goes away after the chunk's first megabyte."""

    def _fetch(self, begin: int, end: int) -> bytes:
        if self.bytes_received > 1_000_000:
            raise StorageUnavailable("the bucket is down")
        return super()._fetch(begin, end)


def test_storage_failing_mid_chunk_is_a_storage_error_not_a_damaged_video(
    clip: Path, tmp_path: Path
) -> None:
    """The chunk is retried (a transient error), not failed as a broken input."""
    data = clip.read_bytes()
    span = cut_spans(clip, chunk_seconds=CHUNK_S)[3]
    with (
        RangedInput(lambda: _FailsMidway(data), name=KEY) as source,
        pytest.raises(StorageUnavailable, match="bucket is down"),
    ):
        upscale_chunk(
            source=source,
            span=span,
            destination=tmp_path / "part.mp4",
            upscaler=InterpolationUpscaler(Factor.X2),
            options=FAST,
        )
    assert list(tmp_path.iterdir()) == []
