"""Tasks that chose a frame rate or slow motion, through the real worker (store on
SQLite, local storage, the real engine with the fastest model on the CPU and RIFE):
the output runs at the task's rate with the frames it makes, in one pass and in
chunks, slow motion says that it left the audio out, and the charge has the
interpolation's price."""

from __future__ import annotations

from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path

import av
import pytest

from tests.clips import make_clip
from tests.media.test_chunked_tasks import submit, work_until_ended
from tests.stores import ledger_sums, worker_settings
from upres.config import Settings
from upres.db.task_store import SqlTaskStore
from upres.domain.tasks import Task, TaskStatus
from upres.jobs.chunk_runner import _ChunkProgress
from upres.pipeline.engine import Progress
from upres.storage import build_storage
from upres.wiring import open_store
from upres.worker_wiring import worker_from_settings

FPS = 12


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return worker_settings(tmp_path / "data", interpolation_price_per_second=4.0)


@pytest.fixture
def store(settings: Settings) -> Iterator[SqlTaskStore]:
    store = open_store(settings)
    yield store
    store.close()


def result_video(settings: Settings, task: Task, tmp_path: Path) -> tuple[int, Fraction, int]:
    """The result's frame count, its stream's average rate, and its width."""
    assert task.result_key is not None
    result = tmp_path / "result.mp4"
    build_storage(settings).copy_to(task.result_key, result)
    with av.open(str(result)) as container:
        stream = container.streams.video[0]
        frames = sum(1 for _ in container.decode(stream))
        assert stream.average_rate is not None
        return frames, Fraction(stream.average_rate), stream.width


def run(settings: Settings, store: SqlTaskStore, task: Task) -> Task:
    with worker_from_settings(settings, worker_id="w1") as loop:
        return work_until_ended(loop, store, task.id)


def test_a_task_runs_at_its_rate_and_is_charged_for_the_interpolation(
    store, settings, clock, tmp_path
):
    source = make_clip(tmp_path / "in.mp4", frames=FPS, fps=FPS, audio=False)  # 1 s
    task = submit(store, settings, source, clock, frame_rate=24.0, credits_reserved=100.0)

    done = run(settings, store, task)

    assert done.status is TaskStatus.COMPLETED, done.error
    assert done.progress == 100
    assert result_video(settings, done, tmp_path) == (24, Fraction(24), 128)
    # 1 s of input at 2x (16 credits) and 1 s of output interpolated (4 credits).
    assert done.credits_charged == 20.0
    assert ledger_sums(store, done.account_id)["refund"] == 80.0


def test_every_chunk_runs_the_tasks_rate(store, settings, clock, tmp_path):
    source = make_clip(
        tmp_path / "in.mp4", frames=2 * FPS, fps=FPS, audio=False, encoder_options={"g": "6"}
    )
    chunked = settings.model_copy(update={"chunk_seconds": 0.5})
    task = submit(store, chunked, source, clock, frame_rate=24.0, credits_reserved=100.0)

    with worker_from_settings(chunked, worker_id="w1") as loop:
        assert loop.run_once()  # claims the task and plans it
        assert len(store.task_chunks(task.id)) == 4
        done = work_until_ended(loop, store, task.id)

    assert done.status is TaskStatus.COMPLETED, done.error
    # No gap and no duplicate at a seam: 2 s at 24 fps.
    assert result_video(chunked, done, tmp_path) == (48, Fraction(24), 128)
    assert done.credits_charged == 2 * 16.0 + 2 * 4.0


def test_slow_motion_notes_that_the_audio_is_left_out(store, settings, clock, tmp_path):
    source = make_clip(tmp_path / "in.mp4", frames=6, fps=FPS)  # 0.5 s, with audio
    task = submit(store, settings, source, clock, slowmo=2, credits_reserved=100.0)

    done = run(settings, store, task)

    assert done.status is TaskStatus.COMPLETED, done.error
    assert result_video(settings, done, tmp_path) == (12, Fraction(FPS), 128)
    assert any("Slow motion (2x)" in note and "audio" in note for note in done.notes), done.notes
    # 0.5 s of input (one started second) slowed to 1 s of output.
    assert done.credits_charged == 16.0 + 4.0


def test_a_chunk_reports_its_share_of_the_output_in_its_source_frames(tmp_path: Path) -> None:
    # 6 source frames made into 15 output frames (12 fps to 30): the store sums
    # source frames into the task's progress and time left.
    progress = _ChunkProgress(tmp_path / "preview.jpg", 6)
    progress.update(Progress(frames_done=10, frames_total=15, elapsed_s=1.0, fps=30.0))
    assert progress.read()[:2] == (4, 12.0)
    progress.update(Progress(frames_done=15, frames_total=15, elapsed_s=1.5, fps=30.0))
    assert progress.read()[:2] == (6, 12.0)
