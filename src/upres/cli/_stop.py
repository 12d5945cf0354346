"""The stop-signal handler of a command that upscales: the first signal cancels the
work in hand (it stops within a batch of frames); a second one interrupts at once."""

from __future__ import annotations

import signal
from types import FrameType

import typer

from upres.pipeline.stages import CancelToken


class StopOnSignal:
    """The first stop signal fires ``cancel``; a second one interrupts at once."""

    def __init__(self) -> None:
        self.cancel = CancelToken()
        self.signum = int(signal.SIGINT)

    def __call__(self, signum: int, frame: FrameType | None) -> None:
        if self.cancel.is_cancelled:
            raise KeyboardInterrupt
        self.signum = signum
        self.cancel.cancel()
        typer.echo("\ncancelling...", err=True)
