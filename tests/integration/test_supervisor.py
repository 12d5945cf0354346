"""Worker processes on this machine: the real Supervisor spawns the real worker
entry, each process sees only its own GPU, and a dead one is replaced on the
same GPU. No GPU is needed: CUDA reads CUDA_VISIBLE_DEVICES only when torch
first touches a GPU, and the workers run on the CPU here."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.serve_harness import wait_for

pytestmark = pytest.mark.slow

# The supervisor runs in a process of its own, so that its workers' stderr
# (where they log) goes to a file this test reads, not to pytest's capture.
SUPERVISE = """
import signal, threading
from upres.config import load_settings
from upres.jobs.supervisor import Supervisor
from upres.worker_entry import run_worker

stop = threading.Event()
signal.signal(signal.SIGTERM, lambda *_: stop.set())
supervisor = Supervisor(
    settings=load_settings(), entry=run_worker, processes=2, gpus=(3, 5), check_s=0.2
)
supervisor.start()
stop.wait()
supervisor.stop(grace_s=10)
"""
# What each worker logs when it starts (upres.worker_entry.run_worker).
STARTED = re.compile(r"worker \S+-(\d+)-(\d+)-[0-9a-f]{6} starts; CUDA_VISIBLE_DEVICES=(\S+)")


class Supervised:
    """A Supervisor of two workers on GPUs 3 and 5, in its own process."""

    def __init__(self, data_dir: Path) -> None:
        self.log = data_dir / "supervisor.log"
        env = {
            **os.environ,
            # As if the operator had already narrowed this machine to six
            # devices: upres's GPU indices count within them, as torch does.
            "CUDA_VISIBLE_DEVICES": "10,11,12,13,14,15",
            "UPRES_DATA_DIR": str(data_dir),
            "UPRES_DEVICE": "cpu",
            "UPRES_TORCH_THREADS": "1",
        }
        with self.log.open("w") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-c", SUPERVISE], stderr=log, env=env, cwd=data_dir
            )

    def starts(self) -> list[tuple[int, int, str]]:
        """(pid, slot, CUDA_VISIBLE_DEVICES) of every worker start so far, in order."""
        found = STARTED.findall(self.log.read_text())
        return [(int(pid), int(slot), devices) for pid, slot, devices in found]

    def stop(self) -> int:
        self.process.send_signal(signal.SIGTERM)
        return self.process.wait(60)


@pytest.fixture
def supervised(tmp_path: Path) -> Iterator[Supervised]:
    supervised = Supervised(tmp_path)
    yield supervised
    if supervised.process.poll() is None:
        supervised.stop()


def test_each_worker_process_sees_only_its_gpu_and_keeps_it_after_a_restart(
    supervised: Supervised,
) -> None:
    wait_for(lambda: len(supervised.starts()) == 2, timeout_s=120, what="two worker processes")
    first = {slot: (pid, devices) for pid, slot, devices in supervised.starts()}
    assert {slot: devices for slot, (_, devices) in first.items()} == {0: "13", 1: "15"}

    killed = first[1][0]
    os.kill(killed, signal.SIGKILL)
    wait_for(lambda: len(supervised.starts()) == 3, timeout_s=120, what="a replacement process")

    pid, slot, devices = supervised.starts()[-1]
    assert (slot, devices) == (1, "15")
    assert pid != killed
    assert supervised.stop() == 0
