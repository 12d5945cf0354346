"""What video encoders do to the whole process, and how upres undoes it.

SVT-AV1 prints a banner and info lines straight to stderr (not through
FFmpeg's log) unless ``SVT_LOG`` says otherwise: ``quiet_encoder_logs`` sets
it once per process, from the entry points (``upres``'s main, a worker's
entry), before any encoder opens. SVT-AV1 run by root also switches threads
to real-time scheduling when an encoder opens: ``demote_realtime_threads``
undoes that after each open (``upres.pipeline.encode``).
"""

from __future__ import annotations

import os
from pathlib import Path

_SVT_LOG, _SVT_ERRORS_ONLY = "SVT_LOG", "1"


def quiet_encoder_logs() -> None:
    """Set ``SVT_LOG`` to errors only unless the user set it: changes this process's
    environment (and so its children's)."""
    os.environ.setdefault(_SVT_LOG, _SVT_ERRORS_ONLY)


def demote_realtime_threads() -> int:
    """Move every SCHED_FIFO or SCHED_RR thread of this process to SCHED_OTHER.

    Returns how many threads were moved (0 where Linux's per-thread scheduling
    interface is missing).
    """
    tasks = Path("/proc/self/task")
    if not tasks.is_dir():
        return 0
    moved = 0
    for entry in tasks.iterdir():
        try:
            if os.sched_getscheduler(int(entry.name)) in (os.SCHED_FIFO, os.SCHED_RR):
                os.sched_setscheduler(int(entry.name), os.SCHED_OTHER, os.sched_param(0))
                moved += 1
        except (ProcessLookupError, PermissionError):
            continue  # the thread ended meanwhile, or is not ours to change
    return moved
