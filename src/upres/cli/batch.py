"""The batch form of ``upres upscale`` and ``upres remote``: SOURCE... OUTPUT_DIR.

Which form a command line is (``single_file_form``): exactly two paths, where
the second is not an existing folder, does not end in ``/`` and has a suffix
(``out.mp4``, also ``out.avi``, which is then refused as before), is the
single-file form ``INPUT OUTPUT``, unchanged. Anything else is the batch form:
the last path is OUTPUT_DIR (created when missing), the others are SOURCEs.

Each video goes to OUTPUT_DIR / its path under its SOURCE folder (a file or a
glob's match: its name), with the container's suffix. The batch goes on past a
failed file; ``run_batch`` returns one ``Outcome`` per file and ``exit_status``
says how it ended: 0 every video done or skipped, 1 at least one failed, 128 + N
stopped by signal N (130 Ctrl-C, 143 SIGTERM, 129 SIGHUP); 2 is a usage or
settings error before any work.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any, Protocol

import typer

from upres.cli._exits import ExitCode, stopped_by
from upres.cli._stop import StopOnSignal
from upres.cli.batch_display import BatchDisplay, Outcome, Status, batch_display, print_summary
from upres.cli.discover import Found, Verdict, discover
from upres.cli.manifest import Manifest, opened
from upres.domain.media import MediaLimits
from upres.errors import Cancelled, UpresError
from upres.pipeline.engine import CancelToken
from upres.pipeline.video_run import Progress

_NOT_OURS = "the output exists and upres did not write it (--overwrite replaces it)"


class ContainerChoice(StrEnum):
    MP4 = "mp4"
    MKV = "mkv"


@dataclass(frozen=True, kw_only=True)
class BatchTarget:
    """The batch form's own options."""

    container: ContainerChoice | None = None
    overwrite: bool = False
    json_lines: bool = False


def single_file_form(paths: Sequence[str]) -> bool:
    """Whether ``paths`` are ``INPUT OUTPUT`` (see the module's docstring for the rule)."""
    if len(paths) != 2:
        return False
    output = paths[1]
    if output.endswith((os.sep, "/")) or Path(output).is_dir():
        return False
    return bool(Path(output).suffix)


@dataclass(frozen=True, kw_only=True)
class Written:
    """What a job reports of the output it wrote."""

    frames: int | None
    detail: str


class Resume:
    """What a job keeps in the manifest to carry on after a crash: a remote task, or
    the finished chunks of a long file."""

    def __init__(self, manifest: Manifest, output: Path, identity: dict[str, Any]) -> None:
        self._manifest, self._output, self._identity = manifest, output, identity
        entry = manifest.entry(output) or {}
        self.kept: dict[str, Any] = dict(entry.get("extra", {}))

    def keep(self, **values: Any) -> None:
        self.kept.update(values)
        self._manifest.start(self._output, self._identity, **values)

    def forget(self) -> None:
        self.kept = {}
        self._manifest.forget_extra(self._output)

    def chunk_parts(self) -> Path:
        """Where a file run in chunks keeps its finished ones until it is done."""
        return self._manifest.chunk_parts(self._output, self._identity)


class Job(Protocol):
    """One video's work: ``settings`` are recorded (a change redoes the file)."""

    @property
    def settings(self) -> dict[str, Any]: ...

    def run(self, staged: Path, report: Callable[[Progress], None], resume: Resume) -> Written:
        """Write the output at ``staged``. Raises UpresError (Cancelled when stopped)."""
        ...


@dataclass(frozen=True, kw_only=True)
class Batch:
    """Where a batch writes and how: ``plan`` makes each video's job (it may raise
    UpresError, which fails that file), ``limits`` bound what counts as a video."""

    sources: Sequence[str]
    output_dir: Path
    suffix: str
    target: BatchTarget
    plan: Callable[[Found], Job]
    limits: MediaLimits


def drive(batch: Batch, stop: StopOnSignal) -> int:
    """Run the whole batch and print its summary; the exit status (see the module)."""
    outcomes: list[Outcome] = []
    found = discover(batch.sources, batch.output_dir, batch.limits)
    try:
        with (
            opened(batch.output_dir) as manifest,
            batch_display(found, json_lines=batch.target.json_lines) as display,
        ):
            outcomes = display.outcomes
            for index, item in enumerate(found):
                display.start(index, item)
                display.finished(_one(item, batch, manifest, display, stop.cancel))
    except (Cancelled, KeyboardInterrupt):
        print_summary(outcomes, json_lines=batch.target.json_lines)
        typer.echo("cancelled: the file in progress was not written", err=True)
        return stopped_by(stop.signum)
    except UpresError as exc:
        typer.echo(f"error: {exc}", err=True)
        return ExitCode.FAILED
    print_summary(outcomes, json_lines=batch.target.json_lines)
    return exit_status(outcomes)


def _one(
    item: Found, batch: Batch, manifest: Manifest, display: BatchDisplay, cancel: CancelToken
) -> Outcome:
    output = batch.output_dir / item.relative.with_suffix(batch.suffix)

    def ended(status: Status, reason: str = "", frames: int | None = None) -> Outcome:
        return Outcome(
            source=item.source, output=output, status=status, reason=reason, frames=frames
        )

    if item.verdict is not Verdict.VIDEO:
        status = Status.SKIPPED if item.verdict is Verdict.NOT_A_VIDEO else Status.FAILED
        return Outcome(source=item.source, output=None, status=status, reason=item.reason)
    # The first file to claim an output keeps it, this run and the next ones alike.
    if any(o.output == output for o in display.outcomes):
        return ended(Status.FAILED, f"an earlier file of this batch writes {output} too")
    try:
        cancel.raise_if_cancelled()
        job = batch.plan(item)
        identity = identity_of(item.source, job.settings)
        if manifest.is_done(output, identity):
            return ended(Status.SKIPPED, "already done with these settings")
        if output.exists() and not batch.target.overwrite and not manifest.wrote(output):
            return ended(Status.FAILED, _NOT_OURS)
        manifest.start(output, identity)
        written = _write(job, output, manifest, identity, display)
    except Cancelled:
        raise
    except UpresError as exc:
        return ended(Status.FAILED, str(exc))
    except OSError as exc:
        return ended(Status.FAILED, f"{exc.strerror or exc} ({exc.filename or output})")
    return ended(Status.DONE, written.detail, written.frames)


def _write(
    job: Job, output: Path, manifest: Manifest, identity: dict[str, Any], display: BatchDisplay
) -> Written:
    """The job into a private folder, then renamed into place (one atomic step)."""
    display.working()
    manifest.partial.mkdir(exist_ok=True)
    folder = Path(tempfile.mkdtemp(dir=manifest.partial))
    try:
        staged = folder / output.name
        written = job.run(staged, display.frames, Resume(manifest, output, identity))
        output.parent.mkdir(parents=True, exist_ok=True)
        os.replace(staged, output)
        manifest.finish(output, identity)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    return written


def identity_of(source: Path, settings: dict[str, Any]) -> dict[str, Any]:
    """What makes an output the same: the source file as it is now and the settings."""
    stat = source.stat()
    return {
        "source": str(source.resolve()),
        "bytes": stat.st_size,
        "mtime_ns": stat.st_mtime_ns,
        "settings": settings,
    }


def exit_status(outcomes: Sequence[Outcome]) -> int:
    """0 when no file failed, else 1."""
    failed = any(o.status is Status.FAILED for o in outcomes)
    return ExitCode.FAILED if failed else ExitCode.OK
