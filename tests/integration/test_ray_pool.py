"""Workers as Ray actors: a real local Ray cluster runs the real worker loop
against a SQLite store in tmp_path, with the real engine on a tiny clip served
by a real HTTP server. Housekeeping (the reaper) runs in this process, as it
does in ``upres worker``."""

from __future__ import annotations

import importlib.abc
import os
import signal
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

import av
import psutil
import pytest

from tests.clips import make_clip
from tests.integration.serve_harness import wait_for
from tests.servers import LocalHttpServer, Route
from upres.config import Settings, load_settings
from upres.db.task_store import SqlTaskStore
from upres.domain.tasks import API_MODEL, Factor, Task, TaskStatus
from upres.jobs.ray_pool import RayPool
from upres.services.keys import KeyService
from upres.services.tasks import Submission, TaskService
from upres.storage import build_storage
from upres.wiring import Housekeeping, services_from_settings
from upres.worker_entry import run_worker

pytestmark = pytest.mark.slow

CREDITS = 1000.0
PRICE_2X = 16.0  # the default price per started second at 2x, for the 1 s clip
ACTOR_TITLE = "ray::WorkerActor"  # how Ray names an actor's process


@dataclass(frozen=True)
class Deployment:
    """What ``upres worker`` runs, with Ray actors as its workers, plus a client's key."""

    settings: Settings
    pool: RayPool
    tasks: TaskService
    keys: KeyService
    store: SqlTaskStore
    clip_url: str


@pytest.fixture(scope="module")
def clip_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalHttpServer]:
    with LocalHttpServer() as server:
        clip = make_clip(tmp_path_factory.mktemp("clips") / "short.mp4")
        server.routes["/short.mp4"] = Route(body=clip.read_bytes())
        longer = make_clip(
            tmp_path_factory.mktemp("clips") / "4s.mp4",
            frames=48,
            fps=12,
            encoder_options={"g": "6"},  # chunks are cut on keyframes
        )
        server.routes["/4s.mp4"] = Route(body=longer.read_bytes())
        yield server


def import_ray() -> ModuleType:
    """The ``ray`` module, imported here rather than at collection (it is slow).

    Skips when Ray itself is not installed; anything else (a missing dependency
    of Ray, a broken install) raises, and the tests fail.
    """
    try:
        import ray  # noqa: PLC0415
    except ModuleNotFoundError as exc:
        if exc.name != "ray":
            raise
        pytest.skip("Ray is not installed (pip install 'upres[ray]')")
    return ray


@pytest.fixture(scope="module")
def local_ray() -> Iterator[ModuleType]:
    """A one-machine Ray cluster; actors are processes here, so SQLite works.

    It declares one GPU that this machine need not have: Ray only counts it,
    and the workers run on the CPU. A cluster that does not start fails the
    tests: only a missing Ray skips them."""
    ray = import_ray()
    # Each actor takes one of these CPUs to be placed (none to run): up to
    # four actors at once.
    ray.init(num_cpus=4, num_gpus=1, include_dashboard=False)
    yield ray
    ray.shutdown()


@pytest.fixture(scope="module")
def deployment(
    local_ray: ModuleType, clip_server: LocalHttpServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Deployment]:
    settings = load_settings(
        data_dir=tmp_path_factory.mktemp("data"),
        ray_address="local",
        worker_concurrency=1,
        allow_private_networks=True,
        # The fast compact model keeps CPU runs short.
        model="realesr-animevideov3",
        device="cpu",
        lease_s=6.0,
        heartbeat_s=0.5,
        reaper_interval_s=0.5,
    )
    with services_from_settings(settings) as services:
        chores = Housekeeping(settings=settings, store=services.store)
        pool = RayPool(settings=settings, entry=run_worker)
        chores.start()
        pool.start()
        try:
            yield Deployment(
                settings=settings,
                pool=pool,
                tasks=services.tasks,
                keys=services.keys,
                store=services.store,
                clip_url=clip_server.url("/short.mp4"),
            )
        finally:
            pool.stop(grace_s=10)
            chores.stop()


def run_task(deployment: Deployment) -> tuple[Task, str]:
    """Submit the clip at 2x for a new account and wait for the task to end."""
    created = deployment.keys.create(credits=CREDITS)
    submission = Submission(
        model=API_MODEL, video_urls=[deployment.clip_url], factor=Factor(2), callback_url=None
    )
    task = deployment.tasks.submit(key=created.key, submission=submission)
    seen: list[Task] = []

    def ended() -> bool:
        seen.append(deployment.tasks.get(key=created.key, task_id=task.id))
        return seen[-1].status.is_terminal

    wait_for(ended, timeout_s=120, what=f"task {task.id} to end")
    return seen[-1], created.key.account_id


def assert_completed_and_charged_once(deployment: Deployment, task: Task, account: str) -> None:
    assert task.status is TaskStatus.COMPLETED, task.error
    assert task.result_key is not None
    output = build_storage(deployment.settings).path(task.result_key)
    with av.open(str(output)) as container:
        video = container.streams.video[0].codec_context
        assert (video.width, video.height) == (128, 96)
    entries = [e for e in deployment.store.ledger(account) if e.task_id == task.id]
    assert [(e.kind.value, e.amount) for e in entries] == [
        ("reserve", PRICE_2X),
        ("capture", PRICE_2X),
    ]


def actor_pids() -> set[int]:
    """Ray worker processes of this test's cluster that host a worker actor."""
    found = set()
    for process in psutil.Process().children(recursive=True):
        try:
            if process.cmdline()[:1] and process.cmdline()[0].startswith(ACTOR_TITLE):
                found.add(process.pid)
        except psutil.NoSuchProcess:
            continue
    return found


def test_a_task_runs_on_a_ray_actor_and_is_charged_once(
    deployment: Deployment, local_ray: ModuleType
) -> None:
    task, account = run_task(deployment)

    assert_completed_and_charged_once(deployment, task, account)
    assert deployment.pool.alive()
    # The cluster has a GPU, so by default the worker actor took it.
    wait_for(
        lambda: local_ray.available_resources().get("GPU", 0) == 0,
        timeout_s=30,
        what="the worker actor to hold the GPU",
    )


def test_a_killed_actor_is_replaced_and_the_next_task_completes(
    deployment: Deployment,
) -> None:
    wait_for(lambda: len(actor_pids()) == 1, timeout_s=60, what="one worker actor process")
    (killed,) = actor_pids()
    os.kill(killed, signal.SIGKILL)

    wait_for(lambda: bool(actor_pids() - {killed}), timeout_s=60, what="a new worker actor process")
    task, account = run_task(deployment)

    assert_completed_and_charged_once(deployment, task, account)
    assert killed not in actor_pids()
    assert deployment.pool.alive()


def test_stopping_the_pool_ends_its_actors(tmp_path: Path, local_ray: None) -> None:
    # No GPU for this one: the deployment's actor holds the cluster's only GPU.
    settings = load_settings(
        data_dir=tmp_path, ray_address="local", device="cpu", ray_gpus_per_worker=0
    )
    pool = RayPool(settings=settings, entry=run_worker)
    before = actor_pids()
    pool.start()
    wait_for(lambda: bool(actor_pids() - before), timeout_s=60, what="the pool's actor")
    assert pool.alive()

    # The actor may still be loading torch and the model, which takes more than 10 s
    # on a loaded machine; its loop sees the stop once it starts. The grace is far
    # longer than that: only an actor that ignored the stop would use it all.
    grace_s = 300
    started = time.monotonic()
    pool.stop(grace_s=grace_s)

    assert not pool.alive()
    assert time.monotonic() - started < grace_s  # the actor stopped when asked, unkilled
    wait_for(lambda: actor_pids() <= before, timeout_s=30, what="the actor process to end")


def test_only_a_missing_ray_skips(monkeypatch: pytest.MonkeyPatch) -> None:
    # None in sys.modules makes `import ray` fail as if ray were not installed.
    monkeypatch.setitem(sys.modules, "ray", None)
    with pytest.raises(pytest.skip.Exception, match="Ray is not installed"):
        import_ray()


def test_a_broken_ray_install_fails(monkeypatch: pytest.MonkeyPatch) -> None:
    class BrokenFinder(importlib.abc.MetaPathFinder):
        def find_spec(self, name: str, path: object, target: object = None) -> None:
            if name == "ray":
                raise ModuleNotFoundError("No module named 'grpc'", name="grpc")

    monkeypatch.delitem(sys.modules, "ray", raising=False)
    monkeypatch.setattr(sys, "meta_path", [BrokenFinder(), *sys.meta_path])
    with pytest.raises(ModuleNotFoundError, match="grpc"):
        import_ray()


def test_one_tasks_chunks_run_on_two_actors(
    tmp_path: Path, local_ray: None, clip_server: LocalHttpServer
) -> None:
    settings = load_settings(
        data_dir=tmp_path,
        ray_address="local",
        worker_concurrency=2,
        ray_gpus_per_worker=0,
        allow_private_networks=True,
        model="realesr-animevideov3",
        device="cpu",
        temporal=False,
        torch_threads=1,
        chunk_seconds=0.5,
        lease_s=6.0,
        heartbeat_s=0.5,
        reaper_interval_s=0.5,
    )
    with services_from_settings(settings) as services:
        pool = RayPool(settings=settings, entry=run_worker)
        pool.start()
        try:
            created = services.keys.create(credits=CREDITS)
            submission = Submission(
                model=API_MODEL,
                video_urls=[clip_server.url("/4s.mp4")],
                factor=Factor(2),
                callback_url=None,
            )
            task = services.tasks.submit(key=created.key, submission=submission)
            owners: dict[int, str] = {}

            def ended() -> bool:
                for chunk in services.store.task_chunks(task.id):
                    if chunk.worker_id is not None:
                        owners[chunk.index] = chunk.worker_id
                return services.store.get_task(task.id).status.is_terminal

            wait_for(ended, timeout_s=240, what=f"task {task.id} to end")
        finally:
            pool.stop(grace_s=10)

        done = services.store.get_task(task.id)
        assert done.status is TaskStatus.COMPLETED, done.error
        assert len(set(owners.values())) == 2
        entries = [e.kind.value for e in services.store.ledger(created.key.account_id)]
        assert entries.count("capture") == 1
