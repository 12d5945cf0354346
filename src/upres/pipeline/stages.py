"""The threads and bounded queues that run the pipeline's stages, and the cancel flag.

    decode (thread) -> [queue] -> upscale (thread) -> [queue] -> encode (caller's thread)

The queues are bounded, so memory stays flat however long the video is, and
decode, inference and encode overlap. The first error in any stage stops the
others (each waits on its queue with a timeout and checks a shared stop
flag), and is raised once every thread has ended.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterator

from upres.errors import Cancelled

QUEUE_BATCHES = 2
_POLL_S = 0.1


class CancelToken:
    """A thread-safe cancel flag; the pipeline checks it between batches."""

    def __init__(self) -> None:
        self._event = threading.Event()

    def cancel(self) -> None:
        self._event.set()

    @property
    def is_cancelled(self) -> bool:
        return self._event.is_set()

    def raise_if_cancelled(self) -> None:
        """Raises Cancelled when ``cancel()`` has been called."""
        if self._event.is_set():
            raise Cancelled("The upscale was cancelled.")


class StoppedError(Exception):
    """Another stage failed; this one leaves quietly."""


class _End:
    """Marks the end of a queue."""


END = _End()


class Run:
    """The shared state of one pipeline run: stop flag, first error, cancel token."""

    def __init__(self, *, cancel: CancelToken, started: float) -> None:
        self.cancel = cancel
        self.started = started
        self.stop = threading.Event()
        self.errors: list[BaseException] = []
        self.lock = threading.Lock()

    def fail(self, exc: BaseException) -> None:
        with self.lock:
            self.errors.append(exc)
        self.stop.set()

    def put(self, box: queue.Queue[object], item: object) -> None:
        """Put, waiting for room; raises StoppedError when another stage failed."""
        while not self.stop.is_set():
            try:
                box.put(item, timeout=_POLL_S)
            except queue.Full:
                continue
            return
        raise StoppedError

    def items(self, box: queue.Queue[object]) -> Iterator[object]:
        """Items until the end marker; raises Cancelled or StoppedError."""
        while True:
            self.cancel.raise_if_cancelled()
            if self.stop.is_set():
                raise StoppedError
            try:
                item = box.get(timeout=_POLL_S)
            except queue.Empty:
                continue
            if item is END:
                return
            yield item

    def thread(self, name: str, work: Callable[[], None]) -> threading.Thread:
        def body() -> None:
            try:
                work()
            except StoppedError:
                pass
            except BaseException as exc:
                self.fail(exc)

        thread = threading.Thread(target=body, name=f"upres-{name}", daemon=True)
        thread.start()
        return thread
