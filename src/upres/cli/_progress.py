"""Progress of ``upres upscale``: a bar on a terminal, plain lines otherwise (logs, pipes)."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.progress import Progress as ProgressBar

from upres.pipeline.video_run import Progress

_PLAIN_INTERVAL_S = 2.0


@contextmanager
def progress_reporter() -> Iterator[Callable[[Progress], None]]:
    """A rich bar on a terminal, else a plain line every few seconds (on stderr)."""
    if not sys.stderr.isatty():
        yield _plain_reporter()
        return
    columns = (
        TextColumn("upscaling"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("frames {task.fields[fps]:.1f} fps"),
        TimeElapsedColumn(),
        TextColumn("ETA"),
        TimeRemainingColumn(),
    )
    with ProgressBar(*columns, console=Console(stderr=True), transient=True) as bar:
        task = bar.add_task("upscale", total=None, fps=0.0)

        def report(progress: Progress) -> None:
            bar.update(
                task,
                completed=progress.frames_done,
                total=_total(progress),
                fps=progress.fps,
            )

        yield report


def _plain_reporter() -> Callable[[Progress], None]:
    last = 0.0

    def report(progress: Progress) -> None:
        nonlocal last
        now = time.monotonic()
        finished = progress.frames_done == progress.frames_total
        if now - last < _PLAIN_INTERVAL_S and not finished:
            return
        last = now
        typer.echo(plain_line(progress), err=True)

    return report


def plain_line(progress: Progress) -> str:
    """One progress line for logs: ``frames 12/48 (25%) 3.1 fps ETA 12s``."""
    total = _total(progress)
    if total is None:
        return f"frames {progress.frames_done} {progress.fps:.1f} fps"
    percent = 100 * progress.frames_done / total
    eta = (total - progress.frames_done) / progress.fps if progress.fps > 0 else 0.0
    return (
        f"frames {progress.frames_done}/{total} ({percent:.0f}%) "
        f"{progress.fps:.1f} fps ETA {eta:.0f}s"
    )


def _total(progress: Progress) -> int | None:
    """The estimate, never below what is already done."""
    if progress.frames_total is None:
        return None
    return max(progress.frames_total, progress.frames_done)
