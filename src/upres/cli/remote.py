"""``upres remote SOURCE... OUTPUT_DIR --server URL``: the batch, upscaled by an
``upres serve`` elsewhere (a GPU box driven from a laptop) through its task API.

Each video: upload (``POST /v1/uploads``), submit with an Idempotency-Key,
follow the task's progress, download the result, check that it is a video of
the source's size times the factor, and rename it into place. The upload's URL
and the key are kept in the manifest before the submission, so a run that
stopped anywhere after the upload submits again with the same key: the server
answers with the task it already has (``Idempotent-Replayed``), which is then
polled, not run twice; a kept upload the server no longer has (expired) is
sent again. The factor comes from ``--factor``, else the nearest
``upres.toml``, else 2; the server decides the rest.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import typer

from upres.cli._signals import handling_stop_signals
from upres.cli._stop import StopOnSignal
from upres.cli.api_client import ApiClient
from upres.cli.batch import Batch, BatchTarget, Job, Resume, Written, drive
from upres.cli.choices import DEFAULT_FACTOR, Options
from upres.cli.discover import Found
from upres.cli.folder_settings import FolderSettings
from upres.domain.media import MediaLimits
from upres.errors import MediaError, RemoteError
from upres.inputs.probe import probe
from upres.pipeline.engine import CancelToken
from upres.pipeline.video_run import Progress

# The server's limits apply there; here any video is sent.
_ANY_SIZE = MediaLimits(max_width=1 << 20, max_height=1 << 20, max_duration_s=float("inf"))
_POLL_S = 1.0
_ENDED = ("completed", "failed", "cancelled")
_REMOTE_SUFFIX = ".mp4"
# What a submission of a kept upload answers once the upload has expired (400, 404) or
# its Idempotency-Key is refused (409).
_STALE = (400, 404, 409)


def remote(
    paths: Annotated[
        list[str],
        typer.Argument(
            metavar="SOURCE... OUTPUT_DIR",
            help="Videos, folders or globs, then the folder to write into.",
        ),
    ],
    *,
    server: Annotated[str, typer.Option(help="The upres server, e.g. http://gpu-box:8000.")],
    key: Annotated[
        str,
        typer.Option(
            envvar="UPRES_API_KEY", help="API key (default: UPRES_API_KEY).", show_default=False
        ),
    ],
    factor: Annotated[
        int | None, typer.Option(help="Output size multiplier: 1, 2 or 4 (default 2).")
    ] = None,
    overwrite: Annotated[
        bool, typer.Option("--overwrite", help="Replace outputs that upres did not write.")
    ] = False,
    json_lines: Annotated[
        bool, typer.Option("--json", help="One JSON line per file on stdout.")
    ] = False,
) -> None:
    """Upscale every video of the SOURCEs on an upres server into OUTPUT_DIR."""
    if factor not in (None, 1, 2, 4):
        raise typer.BadParameter("must be 1, 2 or 4", param_hint="--factor")
    if len(paths) < 2:
        raise typer.BadParameter("give the videos (or folders) and then the output folder")
    client = ApiClient(server, key)
    stop = StopOnSignal()
    folders = FolderSettings()

    def plan(item: Found) -> Job:
        chosen = Options(factor=factor).over(folders.options_for(item.source, item.root))
        return _RemoteJob(
            source=item.source,
            frames=item.frames,
            factor=chosen.factor or int(DEFAULT_FACTOR),
            server=server,
            client=client,
            cancel=stop.cancel,
        )

    batch = Batch(
        sources=paths[:-1],
        output_dir=Path(paths[-1]),
        suffix=_REMOTE_SUFFIX,
        target=BatchTarget(overwrite=overwrite, json_lines=json_lines),
        plan=plan,
        limits=_ANY_SIZE,
    )
    try:
        with handling_stop_signals(stop):
            status = drive(batch, stop)
    finally:
        client.close()
    raise typer.Exit(status)


@dataclass(frozen=True, kw_only=True)
class _RemoteJob:
    source: Path
    frames: int | None
    factor: int
    server: str
    client: ApiClient
    cancel: CancelToken

    @property
    def settings(self) -> dict[str, Any]:
        return {"server": self.server, "factor": self.factor}

    def run(self, staged: Path, report: Callable[[Progress], None], resume: Resume) -> Written:
        """Raises RemoteError (the server's error, an answer this API would not give,
        a result that is not the expected video), Cancelled."""
        try:
            task, resumed = self._submitted(resume)
            done = self._followed(task, report, resume)
            self.client.download(done["results"][0], staged)
        except (KeyError, IndexError, TypeError, ValueError) as exc:
            raise RemoteError(f"The server's answer is not this API's ({exc!r}).") from exc
        width, height = self._verified(staged)
        how = f"task {done['id']} (already submitted: resumed)" if resumed else f"task {done['id']}"
        return Written(frames=self.frames, detail=f"{width}x{height} from {how}")

    def _submitted(self, resume: Resume) -> tuple[dict[str, Any], bool]:
        """The task of this file: the one a stopped run submitted (the server replays
        it for the same Idempotency-Key), else a new one from a new upload."""
        if "upload_url" in resume.kept:
            try:
                return self._submit(resume)
            except RemoteError as exc:
                if exc.status not in _STALE:
                    raise
                # The upload expired, or the key's window passed: start this file afresh.
                resume.forget()
        url = self.client.upload(self.source)
        resume.keep(upload_url=url, idempotency_key=f"upres-remote-{uuid.uuid4().hex}")
        return self._submit(resume)

    def _submit(self, resume: Resume) -> tuple[dict[str, Any], bool]:
        submitted = self.client.submit(
            resume.kept["upload_url"],
            factor=self.factor,
            idempotency_key=resume.kept["idempotency_key"],
        )
        resume.keep(task_id=submitted.task["id"])
        return submitted.task, submitted.replayed

    def _followed(
        self, task: dict[str, Any], report: Callable[[Progress], None], resume: Resume
    ) -> dict[str, Any]:
        """Poll until the task ends; the completed task. Raises RemoteError when it
        failed or was cancelled (the next run submits again)."""
        started = time.monotonic()
        while task["status"] not in _ENDED:
            self.cancel.raise_if_cancelled()
            time.sleep(_POLL_S)
            task = self.client.task(task["id"])
            report(_progress(task, self.frames, time.monotonic() - started))
        if task["status"] != "completed":
            resume.forget()
            error = task.get("error") or {}
            raise RemoteError(f"task {task['id']} {task['status']}: {error.get('message', '')}")
        return task

    def _verified(self, result: Path) -> tuple[int, int]:
        """The result's size, checked to be the source's times the factor."""
        try:
            got = probe(result, limits=_ANY_SIZE)
        except MediaError as exc:
            raise RemoteError(f"The downloaded result is not a readable video: {exc}") from exc
        source = probe(self.source, limits=_ANY_SIZE)
        expected = (source.width * self.factor, source.height * self.factor)
        if (got.width, got.height) != expected:
            raise RemoteError(
                f"The result is {got.width}x{got.height}, not {expected[0]}x{expected[1]}."
            )
        return got.width, got.height


def _progress(task: dict[str, Any], frames: int | None, elapsed_s: float) -> Progress:
    """The task's percentage as frames of the source (as a percentage when unknown)."""
    total = frames or 100
    done = round(total * int(task.get("progress", 0)) / 100)
    return Progress(
        frames_done=done,
        frames_total=total,
        elapsed_s=elapsed_s,
        fps=done / elapsed_s if elapsed_s > 0 else 0.0,
    )


def register(app: typer.Typer) -> None:
    """Add the ``remote`` command to ``app``."""
    app.command("remote")(remote)
