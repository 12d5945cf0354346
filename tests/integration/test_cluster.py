"""Many machines on one: the README's "Running on many machines" recipe, run
as an operator would, every part a real process.

PostgreSQL (the queue and the records), SeaweedFS (the object store), Redis
(the limits two API processes share), a Ray head and two Ray worker nodes
(``ray start``), ``upres worker`` placing its workers on them, and two
``upres serve --workers 0`` API processes. One long clip runs as chunks across
both nodes; one node is killed mid-way and the task still completes,
frame-exact and charged once; a second task, submitted through the other API
process, completes too.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

import av
import httpx
import pytest
from testkit.net import free_port
from testkit.seaweedfs import S3Server, seaweedfs

from tests.clips import make_clip
from tests.integration.serve_harness import Client, Serve, WorkerProcess, create_key, wait_for
from tests.stores import reset_postgres
from upres.db.session import create_db_engine
from upres.db.task_store import SqlTaskStore
from upres.domain.chunks import ChunkStatus

pytestmark = [pytest.mark.slow, pytest.mark.cluster]

POSTGRES_URL = os.environ.get("UPRES_TEST_POSTGRES_URL")
REDIS_URL = os.environ.get("UPRES_TEST_REDIS_URL")
RAY = str(Path(sys.executable).parent / "ray")
RAY_CURRENT_CLUSTER = Path(tempfile.gettempdir()) / "ray" / "ray_current_cluster"
FPS = 12
FRAMES = 48  # 4 s in chunks of 0.5 s: eight chunks
KEYFRAME_EVERY_HALF_SECOND = {"g": "6"}


class RayNode:
    """``ray start --block``: one node of the cluster, in its own process group,
    so that killing it takes its raylet and its workers with it (a machine
    that died)."""

    def __init__(self, args: list[str], *, env: dict[str, str], log: Path) -> None:
        self._log = log.open("w")
        self._process = subprocess.Popen(
            # Every node on loopback: Ray would otherwise pick the machine's address.
            [
                RAY,
                "start",
                "--block",
                "--disable-usage-stats",
                "--node-ip-address=127.0.0.1",
                *args,
            ],
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
        )

    def kill(self) -> None:
        if self._process.poll() is None:
            os.killpg(self._process.pid, signal.SIGKILL)
            self._process.wait(30)
        self._log.close()


@dataclass(frozen=True, kw_only=True)
class Cluster:
    """Addresses of the running deployment, and its processes."""

    env: dict[str, str]
    apis: tuple[Serve, Serve]
    worker: WorkerProcess
    nodes: tuple[RayNode, RayNode]
    store: SqlTaskStore


def ray_cluster(env: dict[str, str], folder: Path, port: int, stack: ExitStack) -> list[RayNode]:
    """A head with no CPU (it runs no worker) and two worker nodes of one CPU
    each: one worker actor lands on each node. Each is killed when ``stack`` closes."""

    def node(args: list[str], name: str) -> RayNode:
        started = RayNode(args, env=env, log=folder / f"{name}.log")
        stack.callback(started.kill)
        return started

    head = node(["--head", f"--port={port}", "--num-cpus=0", "--include-dashboard=false"], "head")
    wait_for(lambda: _nodes(port, env) >= 1, timeout_s=300, what="the Ray head")
    workers = []
    for i in range(2):
        # One after the other: two nodes of one machine starting together can pick
        # the same socket name in the head's session folder, and one raylet then
        # dies on "Address already in use" (seen inside the whole suite).
        workers.append(node([f"--address=127.0.0.1:{port}", "--num-cpus=1"], f"n{i}"))
        wait_for(
            lambda nodes=2 + i: _nodes(port, env) >= nodes,
            timeout_s=300,
            what=f"Ray worker node {i + 1}",
        )
    return [head, *workers]


def _nodes(port: int, env: dict[str, str]) -> int:
    status = subprocess.run(
        [RAY, "status", f"--address=127.0.0.1:{port}"],
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    return status.stdout.count(" node_")


def environment(data_dir: Path, s3: S3Server, bucket: str) -> dict[str, str]:
    assert POSTGRES_URL is not None
    assert REDIS_URL is not None
    return {
        **os.environ,
        **s3.environ(bucket),
        "RAY_USAGE_STATS_ENABLED": "0",
        # Ray turns token authentication on when ~/.ray/auth_token exists (a local
        # ray.init() leaves one); this test cluster lives on loopback, for one test.
        "RAY_AUTH_MODE": "disabled",
        # A loaded 2-core machine registers a node slower than Ray's 10 s default.
        "RAY_raylet_start_wait_time_s": "120",
        "UPRES_DATA_DIR": str(data_dir),
        "UPRES_DATABASE_URL": POSTGRES_URL,
        "UPRES_REDIS_URL": REDIS_URL,
        "UPRES_MODEL": "realesr-animevideov3",
        "UPRES_DEVICE": "cpu",
        "UPRES_TEMPORAL": "false",
        "UPRES_TORCH_THREADS": "1",
        "UPRES_CHUNK_SECONDS": "0.5",
        "UPRES_LEASE_S": "4",
        "UPRES_HEARTBEAT_S": "0.5",
        "UPRES_REAPER_INTERVAL_S": "0.5",
        "UPRES_WORKER_CONCURRENCY": "2",
        "UPRES_RAY_GPUS_PER_WORKER": "0",
        "UPRES_INITIAL_CREDITS": "0",
        "UPRES_RATE_LIMIT_PER_MINUTE": "100000",
    }


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[Cluster]:
    if POSTGRES_URL is None or REDIS_URL is None:
        pytest.skip("UPRES_TEST_POSTGRES_URL and UPRES_TEST_REDIS_URL are needed (.ci/run)")
    engine = create_db_engine(POSTGRES_URL)
    reset_postgres(engine)
    engine.dispose()
    with ExitStack() as stack:
        s3 = stack.enter_context(seaweedfs(tmp_path / "seaweedfs"))
        env = environment(tmp_path / "data", s3, s3.new_bucket())
        # Ray records the running cluster in this file; the suite's other Ray
        # tests must not find this one once it is gone.
        stack.callback(RAY_CURRENT_CLUSTER.unlink, missing_ok=True)
        head_port = free_port()
        nodes = ray_cluster(env, tmp_path, head_port, stack)
        env["UPRES_RAY_ADDRESS"] = f"127.0.0.1:{head_port}"
        worker = WorkerProcess(tmp_path / "data", env=env)
        stack.callback(worker.stop)
        apis = [
            Serve(tmp_path / f"api{i}", port=free_port(), env=env, args=("--workers", "0"))
            for i in range(2)
        ]
        for api in apis:
            api.launch()
            stack.callback(api.stop)
        for api in apis:
            api.wait_healthy()
        store = SqlTaskStore(POSTGRES_URL)
        stack.callback(store.close)
        yield Cluster(
            env=env, apis=(apis[0], apis[1]), worker=worker, nodes=(nodes[1], nodes[2]), store=store
        )


def frame_times(path: Path) -> list[float]:
    with av.open(str(path)) as container:
        return [float(frame.time) for frame in container.decode(video=0)]


def upload_and_submit(client: httpx.Client, clip: Path) -> str:
    """The laptop's way in: upload the file, submit the upload; the task id."""
    uploaded = client.post("/v1/uploads", content=clip.read_bytes())
    assert uploaded.status_code == 200, uploaded.text
    body = {
        "model": "topaz-video-upscale",
        "video_urls": [uploaded.json()["url"]],
        "model_params": {"upscale_factor": "2"},
    }
    submitted = client.post("/v1/videos/generations", json=body)
    assert submitted.status_code == 200, submitted.text
    return str(submitted.json()["id"])


def test_a_long_task_survives_a_dead_ray_node_and_both_apis_serve(
    cluster: Cluster, tmp_path: Path
) -> None:
    key = create_key(tmp_path / "keys", credits=1000, env=cluster.env).secret
    clip = make_clip(
        tmp_path / "long.mp4",
        width=96,
        height=64,
        frames=FRAMES,
        fps=FPS,
        encoder_options=KEYFRAME_EVERY_HALF_SECOND,
    )
    first_api, second_api = (Client(api.base_url, key) for api in cluster.apis)
    headers = {"Authorization": f"Bearer {key}"}
    with httpx.Client(base_url=cluster.apis[0].base_url, headers=headers, timeout=60) as http:
        task_id = upload_and_submit(http, clip)

    def both_nodes_busy() -> bool:
        chunks = cluster.store.task_chunks(task_id)
        running = [c for c in chunks if c.status is ChunkStatus.PROCESSING]
        return len(running) == 2 and any(c.status is ChunkStatus.DONE for c in chunks)

    wait_for(both_nodes_busy, timeout_s=300, what="chunks running on both Ray nodes")
    owners_before = {c.worker_id for c in cluster.store.task_chunks(task_id) if c.worker_id}
    cluster.nodes[1].kill()

    with httpx.Client(base_url=cluster.apis[1].base_url, headers=headers, timeout=60) as http:
        second_id = upload_and_submit(http, make_clip(tmp_path / "short.mp4", frames=12))
    done = first_api.wait_for(task_id, "completed", "failed", timeout_s=400)
    second = second_api.wait_for(second_id, "completed", "failed", timeout_s=400)
    first_api.close()
    second_api.close()

    assert done["status"] == "completed", done
    assert second["status"] == "completed", second
    assert len(owners_before) == 2
    result = tmp_path / "result.mp4"
    result.write_bytes(httpx.get(done["results"][0], timeout=60, follow_redirects=True).content)
    assert frame_times(result) == pytest.approx(frame_times(clip), abs=1e-3)
    task = cluster.store.get_task(task_id)
    kinds = [e.kind.value for e in cluster.store.ledger(task.account_id) if e.task_id == task_id]
    assert kinds == ["reserve", "capture"]
