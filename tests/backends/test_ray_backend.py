"""The ray backend on one local Ray cluster, started once for these tests (with a Serve app of
two CPU replicas of the tiny pipelines) and stopped after them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time

import pytest
import requests

pytest.importorskip("diffusers", reason="the ray backend needs pip install '.[gpu,ray]'")
pytest.importorskip("ray", reason="the ray backend needs pip install '.[ray]'")

import ray  # noqa: E402
from ray import serve  # noqa: E402

from mockserver.backends.ray import security  # noqa: E402
from mockserver.backends.ray.client import RayBackend, connect, server_scope  # noqa: E402
from mockserver.backends.ray.options import APP_NAME, DEPLOYMENT  # noqa: E402
from tests.support import (  # noqa: E402
    ROOT,
    RunningServer,
    assert_contract_suite_passes,
    auth,
    free_port,
    make_generation,
)

# Logical CPUs: two for the shared app's replicas, one for the backpressure test's own app.
CLUSTER = {"num_cluster_cpus": 4, "num_cpus": 1}


@pytest.fixture(scope="session")
def cluster(spec, models_dir):
    """A local Ray cluster with the ``mockserver`` Serve app (two replicas) deployed: the
    address servers join with ``--backend-option address=...``."""
    with server_scope(spec=spec, models_dir=str(models_dir), replicas=2, **CLUSTER) as joined:
        connect(joined["address"])
        try:
            yield joined["address"]
        finally:
            ray.shutdown()


@pytest.fixture(scope="session")
def backend(spec, cluster):
    """A client of the shared app in this process."""
    return RayBackend(spec=spec, address=cluster)


def generation(**overrides):
    return make_generation(
        **{"width": 256, "height": 256, "num_inference_steps": 4, "seed": 7, **overrides}
    )


def replica_actors(app_name: str = APP_NAME) -> list[str]:
    return [
        actor["name"]
        for actor in ray.util.list_named_actors(all_namespaces=True)
        if actor["namespace"] == "serve" and f"{app_name}#{DEPLOYMENT}" in actor["name"]
    ]


def running_replicas(app_name: str = APP_NAME) -> int:
    app = serve.status().applications.get(app_name)
    if app is None:
        return 0
    return app.deployments[DEPLOYMENT].replica_states.get("RUNNING", 0)


def test_the_same_seed_gives_the_same_image_on_every_replica(backend):
    first = backend.generate(generation(seed=21))
    for _ in range(30):  # requests one at a time: Serve picks a replica at random
        assert backend.generate(generation(seed=21)) == first
        if len(backend.served_by) == 2:
            break
    assert len(backend.served_by) == 2, backend.served_by
    assert backend.generate(generation(seed=22)) != first


def test_the_contract_suite_passes_against_the_ray_backend(cluster):
    server = RunningServer(
        "--backend", "ray", "--backend-option", f"address={cluster}", ready_within=180
    )
    try:
        assert_contract_suite_passes(server.url)
    finally:
        server.stop()


def ask(url: str, outcomes: list, seed: int, size: int = 256) -> None:
    body = {
        "prompt": "a red fox",
        "model": "sdxl-lightning",
        "width": size,
        "height": size,
        "num_inference_steps": 4,
        "seed": seed,
    }
    started = time.monotonic()
    reply = requests.post(url + "/api/v1/generate", json=body, headers=auth(), timeout=120)
    seconds = time.monotonic() - started
    outcomes.append((reply.status_code, reply.headers.get("Retry-After"), seconds))


def test_a_replica_killed_under_load_loses_no_request_and_is_replaced(cluster):
    server = RunningServer(
        "--backend", "ray", "--backend-option", f"address={cluster}", ready_within=180
    )
    try:
        outcomes: list = []

        def client(index: int) -> None:
            for i in range(5):
                ask(server.url, outcomes, seed=index * 100 + i, size=512)

        clients = [threading.Thread(target=client, args=(i,)) for i in range(6)]
        for thread in clients:
            thread.start()
        while len(outcomes) < 3:  # the load is under way on both replicas
            time.sleep(0.05)
        victim = replica_actors()[0]
        ray.kill(ray.get_actor(victim, namespace="serve"), no_restart=True)
        for thread in clients:
            thread.join()
        assert [status for status, *_ in outcomes] == [200] * 30, outcomes
        deadline = time.monotonic() + 60
        while victim in replica_actors() or running_replicas() < 2:
            assert time.monotonic() < deadline, "the dead replica was not replaced"
            time.sleep(0.5)
        late: list = []
        ask(server.url, late, seed=1)
        assert late[0][0] == 200
    finally:
        server.stop()


def test_past_max_queued_requests_the_answer_is_503_with_retry_after_at_once(cluster, models_dir):
    """One replica that takes one request at a time and one more in the queue, 8 at once:
    the rest are refused at once, the others served."""
    server = RunningServer(
        "--backend", "ray", "--models-dir", str(models_dir),
        "--backend-option", f"address={cluster}", "--backend-option", "app_name=pressure",
        "--backend-option", "replicas=1",
        "--backend-option", "max_ongoing_requests=1", "--backend-option", "max_queued_requests=1",
        "--backend-option", "num_cpus=1", ready_within=180,
    )  # fmt: skip
    try:
        warm: list = []
        ask(server.url, warm, seed=99)  # the server's handle has Serve's limits from now on
        assert warm[0][0] == 200
        outcomes: list = []
        clients = [
            threading.Thread(target=ask, args=(server.url, outcomes, seed, 1024))
            for seed in range(8)
        ]
        for thread in clients:
            thread.start()
        for thread in clients:
            thread.join()
        served = [seconds for status, _, seconds in outcomes if status == 200]
        refused = [(after, seconds) for status, after, seconds in outcomes if status == 503]
        assert len(served) + len(refused) == 8, outcomes
        assert served and len(refused) >= 4, outcomes
        assert all(after and int(after) >= 1 for after, _ in refused), outcomes
        # Refused at once: sooner than the one generation the fastest served request waited.
        assert max(seconds for _, seconds in refused) < min(served), outcomes
    finally:
        server.stop()
    assert running_replicas("pressure") == 0  # the server undeployed the app it deployed


def test_a_cluster_that_cannot_be_reached_is_one_line_and_exit_2():
    port = free_port()
    result = subprocess.run(
        [
            sys.executable, "-m", "mockserver", "--backend", "ray",
            "--backend-option", f"address=127.0.0.1:{port}",
            "--backend-option", "auth_token=the-clusters-token",
        ],
        cwd=ROOT, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        f"mockserver: cannot start: cannot reach the Ray cluster at 127.0.0.1:{port}: "
        "[Errno 111] Connection refused"
    ]


def start_without_a_token(*options: str) -> subprocess.CompletedProcess[str]:
    """``python -m mockserver --backend ray`` with *options*, in an environment that holds no
    Ray token."""
    environment = {k: v for k, v in os.environ.items() if not k.startswith("RAY_AUTH")}
    arguments = [sys.executable, "-m", "mockserver", "--backend", "ray"]
    for option in options:
        arguments += ["--backend-option", option]
    return subprocess.run(
        arguments, cwd=ROOT, env=environment, capture_output=True, text=True, timeout=60
    )


def test_joining_a_cluster_without_its_token_is_refused():
    result = start_without_a_token(f"address=127.0.0.1:{free_port()}")
    assert result.returncode == 2
    [line] = result.stderr.strip().splitlines()
    assert line.startswith("mockserver: cannot start: joining the Ray cluster at 127.0.0.1:")
    assert "needs its token" in line and "insecure_cluster=true" in line


def test_insecure_cluster_joins_without_a_token_and_names_the_risk():
    port = free_port()
    result = start_without_a_token(f"address=127.0.0.1:{port}", "insecure_cluster=true")
    assert result.returncode == 2  # nothing listens there: it got as far as trying
    warning, refusal = result.stderr.strip().splitlines()
    assert warning == security.insecure_warning(f"127.0.0.1:{port}")
    assert "anyone who can reach its ports can run any code" in warning
    assert refusal.startswith(
        f"mockserver: cannot start: cannot reach the Ray cluster at 127.0.0.1:{port}"
    )


def test_the_gpu_benchmark_compares_ray_with_one_replica_on_tiny_pipelines(cluster, tmp_path):
    """`bench/bench_gpu.py --ray` runs whole here, in the shared cluster (on a GPU machine it
    starts its own). It asserts what the report holds, never how fast anything was."""
    output = tmp_path / "gpu.json"
    result = subprocess.run(
        [
            sys.executable, "bench/bench_gpu.py", "--tiny", "--repeats", "1", "--size", "256",
            "--skip-plain", "--ray", "--ray-address", cluster, "--ray-cpus", "1",
            "--output", str(output),
        ],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(output.read_text())["ray"]
    for name in ("in_process", "ray_1"):
        runs = [report[name][concurrency] for concurrency in ("1", "8")]
        assert [run["concurrency"] for run in runs] == [1, 8]
        assert all(run["images"] >= 16 and run["images_per_s"] > 0 for run in runs)
    assert report["ray_1_over_in_process_c8"] > 0
    assert "Ray 1 replica / in-process" in result.stdout
    assert running_replicas("bench-gpu") == 0  # the benchmark undeployed its app
