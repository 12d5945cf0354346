"""What a batch shows: progress on stderr (a rich display on a terminal, plain lines
otherwise), one line per file as it ends (JSON on stdout with ``--json``), and a
summary table at the end (on stdout; on stderr with ``--json``)."""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import TextIO

import typer
from rich import box
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    TextColumn,
    TimeRemainingColumn,
)
from rich.progress import Progress as ProgressBar
from rich.table import Table

from upres.cli._progress import plain_line
from upres.cli.discover import Found, Verdict
from upres.pipeline.video_run import Progress

_PLAIN_INTERVAL_S = 2.0
_UNWRAPPED = 100_000


class Status(StrEnum):
    DONE = "done"
    SKIPPED = "skipped"
    FAILED = "failed"


@dataclass(frozen=True, kw_only=True)
class Outcome:
    """How one file of the batch ended; ``reason`` says why, or what was written."""

    source: Path
    output: Path | None
    status: Status
    reason: str = ""
    frames: int | None = None

    def as_json(self) -> str:
        """The ``--json`` line: source, output (null for a file that has none), status,
        reason, frames (written this run)."""
        return json.dumps(
            {
                "source": str(self.source),
                "output": str(self.output) if self.output is not None else None,
                "status": self.status.value,
                "reason": self.reason,
                "frames": self.frames,
            }
        )


class BatchDisplay:
    """The progress of one batch. ``frames`` is the current file's ``on_progress``."""

    def __init__(
        self, found: Sequence[Found], *, json_lines: bool, bar: ProgressBar | None
    ) -> None:
        self.outcomes: list[Outcome] = []
        self._count = len(found)
        videos = (item for item in found if item.verdict is Verdict.VIDEO)
        self._frames = {item.source: item.frames or 0 for item in videos}
        self._json, self._bar = json_lines, bar
        self._started = time.monotonic()
        self._done_frames = 0  # this run's frames of finished files
        self._current: Found | None = None
        self._index = 0
        self._current_frames = 0
        self._last_line = 0.0
        if bar is not None:
            self._batch = bar.add_task("files", total=sum(self._frames.values()) or None, label="")
            self._file = bar.add_task("file", total=None, label="", visible=False)

    def start(self, index: int, item: Found) -> None:
        """The batch reached ``item`` (the ``index``-th file)."""
        self._current, self._current_frames, self._index = item, 0, index
        if self._bar is not None:
            self._bar.update(self._batch, label=f"files {index}/{self._count}")

    def working(self) -> None:
        """The current file's work starts."""
        item = self._current
        assert item is not None
        label = f"{self._index + 1}/{self._count} {item.source.name}"
        if self._bar is not None:
            self._bar.update(self._file, label=label, completed=0, total=item.frames, visible=True)
        else:
            self._line(f"[{label}] started")

    def frames(self, progress: Progress) -> None:
        self._current_frames = progress.frames_done
        if self._bar is not None:
            total = progress.frames_total
            self._bar.update(self._file, completed=progress.frames_done, total=total)
            self._bar.update(self._batch, completed=self._done_frames + progress.frames_done)
            return
        now = time.monotonic()
        if now - self._last_line >= _PLAIN_INTERVAL_S:
            self._last_line = now
            name = self._current.source.name if self._current else ""
            self._line(f"[{name}] {plain_line(progress)}, batch ETA {self._eta_s():.0f}s")

    def finished(self, outcome: Outcome) -> None:
        self.outcomes.append(outcome)
        if outcome.status is Status.DONE:
            self._done_frames += self._current_frames
        else:
            # Its frames will not be done: the batch's total shrinks.
            self._frames.pop(outcome.source, None)
        if self._bar is not None:
            total = sum(self._frames.values()) or None
            label = f"files {self._index + 1}/{self._count}"
            self._bar.update(self._batch, total=total, label=label)
            self._bar.update(self._file, visible=False)
        if self._json:
            typer.echo(outcome.as_json())
        else:
            self._line(_outcome_line(outcome))

    def _eta_s(self) -> float:
        elapsed = time.monotonic() - self._started
        done = self._done_frames + self._current_frames
        if done == 0 or elapsed <= 0:
            return 0.0
        return max(0, sum(self._frames.values()) - done) * elapsed / done

    def _line(self, text: str) -> None:
        if self._bar is not None:
            self._bar.console.print(text, markup=False, highlight=False)
        else:
            typer.echo(text, err=True)


def _outcome_line(outcome: Outcome) -> str:
    where = f" -> {outcome.output}" if outcome.status is Status.DONE else ""
    return f"{outcome.status.value:<7} {outcome.source}{where}: {outcome.reason}"


@contextmanager
def batch_display(found: Sequence[Found], *, json_lines: bool) -> Iterator[BatchDisplay]:
    """A rich display on a terminal (stderr), plain lines otherwise."""
    if not sys.stderr.isatty():
        yield BatchDisplay(found, json_lines=json_lines, bar=None)
        return
    columns = (
        TextColumn("{task.fields[label]}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("frames"),
        TimeRemainingColumn(),
    )
    with ProgressBar(*columns, console=Console(stderr=True), transient=True) as bar:
        yield BatchDisplay(found, json_lines=json_lines, bar=bar)


def print_summary(outcomes: Sequence[Outcome], *, json_lines: bool) -> None:
    """The table of every file and the count of each status."""
    out: TextIO = sys.stderr if json_lines else sys.stdout
    table = Table(box=box.SIMPLE, show_edge=False)
    for column in ("status", "file", "detail"):
        table.add_column(column, overflow="fold")
    for outcome in outcomes:
        table.add_row(outcome.status.value, str(outcome.source), outcome.reason)
    # Not a terminal: rows are never wrapped, so a log or a grep sees each whole.
    console = Console(file=out, width=None if out.isatty() else _UNWRAPPED)
    console.print(table)
    counts = ", ".join(f"{sum(o.status is s for o in outcomes)} {s.value}" for s in Status)
    console.print(counts, markup=False, highlight=False)
