"""The heartbeat thread of a running task or chunk: it renews the lease every
few seconds and stops the pipeline (through its cancel token) once the work
was cancelled or the lease lost."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from upres.domain.records import Heartbeat
from upres.errors import LeaseLost
from upres.pipeline.engine import CancelToken

log = logging.getLogger(__name__)


@contextmanager
def heartbeats(
    beat: Callable[[], Heartbeat],
    *,
    every_s: float,
    cancel: CancelToken,
    name: str,
    after_beat: Callable[[], None] = lambda: None,
) -> Iterator[None]:
    """Call ``beat`` every ``every_s`` (then ``after_beat``) while the block runs.

    A beat that raises LeaseLost or reports ``cancelled`` cancels ``cancel``
    and beats no more; any other error is logged and the next beat tries again
    (the lease still has time). Raises Cancelled when the block ends with
    ``cancel`` cancelled.
    """
    stop = threading.Event()
    thread = threading.Thread(
        target=_beat_until,
        kwargs={
            "beat": beat,
            "every_s": every_s,
            "cancel": cancel,
            "stop": stop,
            "after_beat": after_beat,
            "name": name,
        },
        name=f"heartbeat-{name}",
        daemon=True,
    )
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()
    cancel.raise_if_cancelled()


def _beat_until(
    *,
    beat: Callable[[], Heartbeat],
    every_s: float,
    cancel: CancelToken,
    stop: threading.Event,
    after_beat: Callable[[], None],
    name: str,
) -> None:
    while not stop.wait(every_s):
        try:
            answer = beat()
        except LeaseLost:
            log.warning("%s lost its lease", name)
            cancel.cancel()
            return
        except Exception:
            log.exception("heartbeat of %s failed", name)
            continue
        if answer.cancelled:
            cancel.cancel()
            return
        after_beat()
