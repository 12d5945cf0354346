"""How a run that raised ends: the one mapping of errors to outcomes that
tasks and chunks share.

- bad input (``MediaError``) or an input URL that fails the same way on every
  try (``InputRefused``: 4xx, refused, too large): failed at once, refunded;
- anything else (a transient download failure, a crash in a stage): failed
  with a retry, so the store puts the work back in the queue while attempts
  remain;
- cancelled or lease lost: nothing more to write (the store already knows).
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from upres.domain.tasks import Task, TaskError
from upres.errors import Cancelled, InputRefused, LeaseLost, MediaError, UpresError

log = logging.getLogger(__name__)

Fail = Callable[[TaskError, bool], Task | None]
"""Reports a failure to the store: the error, and whether to retry."""


def settled(work: Callable[[], Task | None], fail: Fail, *, what: str) -> Task | None:
    """Run ``work``; when it raises, report the outcome above through ``fail``.
    Returns what ``work`` or ``fail`` returned, None when cancelled or fenced out."""
    try:
        return work()
    except (Cancelled, LeaseLost) as exc:
        log.info("%s stopped: %s", what, exc)
        return None
    except (MediaError, InputRefused) as exc:
        return _report(fail, exc, retry=False, what=what)
    except UpresError as exc:
        return _report(fail, exc, retry=True, what=what)
    except Exception as exc:
        log.exception("%s crashed", what)
        return _report(fail, exc, retry=True, what=what)


def _report(fail: Fail, exc: BaseException, *, retry: bool, what: str) -> Task | None:
    error = task_error(exc)
    log.warning("%s failed: %s", what, error.message)
    try:
        return fail(error, retry)
    except LeaseLost:
        return None


def task_error(exc: BaseException) -> TaskError:
    """The string code and message a client sees on a failed task."""
    if isinstance(exc, UpresError):
        return TaskError(code=exc.code, message=exc.message)
    return TaskError(code="service_error", message="The upscaling service failed on this task")
