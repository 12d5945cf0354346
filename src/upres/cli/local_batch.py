"""``upres upscale SOURCE... OUTPUT_DIR``: every video of the sources, one after the
other, each through the single-file run (``upscale.run_file``).

Each video's choices: the command's options over its folder's ``upres.toml``
over ``UPRES_*`` over the defaults (``choose``). The manifest records the
choices that shape the output (not the device or the worker count: they change
how fast, not what).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import typer

from upres.cli._settings import settings_or_exit
from upres.cli._signals import handling_stop_signals
from upres.cli._stop import StopOnSignal
from upres.cli.batch import Batch, BatchTarget, ContainerChoice, Job, Resume, Written, drive
from upres.cli.choices import Choices, Options, RunOptions, choose
from upres.cli.discover import Found
from upres.cli.folder_settings import FolderSettings
from upres.cli.upscale import run_file
from upres.config import Settings
from upres.models.registry import model_for
from upres.pipeline.engine import CancelToken
from upres.pipeline.video_run import Progress
from upres.worker_wiring import apply_torch_threads


def upscale_batch(
    paths: Sequence[str], options: Options, run: RunOptions, target: BatchTarget
) -> int:
    """The batch of ``paths`` (SOURCE... OUTPUT_DIR); its exit status (``batch.drive``)."""
    if len(paths) < 2:
        raise typer.BadParameter("give the videos (or folders) and then the output folder")
    stop = StopOnSignal()
    with handling_stop_signals(stop):
        settings = settings_or_exit()
        apply_torch_threads(settings)
        folders = FolderSettings()

        def plan(item: Found) -> Job:
            given = options.over(folders.options_for(item.source, item.root))
            return _LocalJob(
                source=item.source,
                choices=choose(given, run, settings),
                settings_=settings,
                cancel=stop.cancel,
            )

        container = target.container or ContainerChoice.MP4
        batch = Batch(
            sources=paths[:-1],
            output_dir=Path(paths[-1]),
            suffix=f".{container.value}",
            target=target,
            plan=plan,
            limits=settings.media_limits,
        )
        return drive(batch, stop)


@dataclass(frozen=True, kw_only=True)
class _LocalJob:
    source: Path
    choices: Choices
    settings_: Settings
    cancel: CancelToken

    @property
    def settings(self) -> dict[str, Any]:
        """What shapes the output. Raises UnknownModel for a model id upres does not have."""
        encode = self.choices.encode
        return {
            "factor": int(self.choices.factor),
            "model": model_for(self.choices.factor, self.choices.model).id,
            "codec": encode.codec,
            "crf": encode.crf,
            "preset": encode.preset,
            "temporal": self.choices.temporal,
            "double_rate": self.choices.double_rate,
        }

    def run(self, staged: Path, report: Callable[[Progress], None], resume: Resume) -> Written:
        summary = run_file(
            self.source,
            staged,
            self.choices,
            settings=self.settings_,
            cancel=self.cancel,
            display=lambda: nullcontext(report),
            parts=resume.chunk_parts,
        )
        fps = summary.frames / summary.elapsed_s if summary.elapsed_s > 0 else 0.0
        notes = "".join(f"; {note}" for note in summary.notes)
        return Written(
            frames=summary.frames,
            detail=f"{summary.width}x{summary.height}, {summary.frames} frames "
            f"in {summary.elapsed_s:.1f} s ({fps:.1f} fps){notes}",
        )
