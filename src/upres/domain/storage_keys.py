"""The names of every object upres keeps in result storage, in one place.

One bucket (or folder) holds, per task: its results (one per attempt), the
small browser-playable copy of a result, the preview of a running task, and
for a task run in chunks its stored input and each chunk's output; beside the
tasks, the uploads. Each key is decided by one function here, so the writer,
the reader and the janitor can never disagree on a name.
"""

from __future__ import annotations


def result_key(task_id: str, attempt: int) -> str:
    """Where an attempt's result is stored: named by the attempt, so a late
    attempt whose lease was lost never overwrites the result that settled."""
    return f"{task_id}/attempt-{attempt}.mp4"


def download_name(key: str) -> str:
    """The file name a client saves the result under ``key`` as: ``<task id>.mp4``."""
    return f"{key.split('/', 1)[0]}.mp4"


def playable_key(result_key: str) -> str:
    """Where the small H.264 copy of a result browsers cannot play lives, beside it."""
    stem = result_key.removesuffix(".mp4")
    return f"{stem}.h264-preview.mp4"


def preview_key(task_id: str) -> str:
    """Where a running task's preview JPEG lives."""
    return f"{task_id}/preview.jpg"


def chunk_output_key(task_id: str, index: int, attempt: int) -> str:
    """Where an attempt of a chunk stores its output: named by the attempt, so a
    late attempt whose lease was lost never overwrites the output that counted."""
    return f"{task_id}/chunks/{index:05d}-attempt-{attempt}.mp4"


def chunk_source_key(task_id: str) -> str:
    """Where a chunked task's input lies: stored once by the planner, so that
    every chunk and the join read the very same bytes (an input URL may change
    or expire meanwhile) without asking its server again."""
    return f"{task_id}/chunks/source"


def upload_key(upload_id: str) -> str:
    """Where an upload's bytes live (apart from task results)."""
    return f"uploads/{upload_id}.mp4"
