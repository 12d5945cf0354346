"""The entry point of one worker, in its own process or Ray actor (a ``WorkerEntry``).

Part of the composition root, and light on purpose: a pool sends
``run_worker`` to a new process by reference, which imports this module
before the process has set its environment (its GPU); the engine (torch) is
imported only once ``run_worker`` runs.
"""

from __future__ import annotations

import logging
import os

from upres.clock import holder_id
from upres.config import Settings
from upres.jobs.claim_loop import StopSignal
from upres.pipeline.encoder_process import quiet_encoder_logs

log = logging.getLogger(__name__)


def run_worker(settings_json: str, slot: int, stop: StopSignal) -> None:
    """Build everything from the settings (``Settings.model_dump_json``), then
    work until ``stop``."""
    # Imported here, not at the top: a pool's own process never needs the engine,
    # and a worker process must be able to set its environment before torch loads.
    from upres.wiring import configure_logging  # noqa: PLC0415
    from upres.worker_wiring import worker_from_settings  # noqa: PLC0415

    settings = Settings.model_validate_json(settings_json)
    configure_logging()
    # A Ray actor's process did not start from upres's main.
    quiet_encoder_logs()
    worker_id = holder_id(str(slot))
    # Which GPU a worker got (from Supervisor or from Ray) is the one thing an
    # operator cannot see from outside; the entry reads it once, for the log.
    devices = os.environ.get("CUDA_VISIBLE_DEVICES", "unset")
    log.info("worker %s starts; CUDA_VISIBLE_DEVICES=%s", worker_id, devices)
    if settings.vulkan_device is not None:
        log.info("worker %s runs on Vulkan device %d", worker_id, settings.vulkan_device)
    with worker_from_settings(settings, worker_id=worker_id) as worker:
        worker.run_until(stop)
