"""The ray backend: the diffusers backend's pipelines in a Ray Serve deployment, one replica per
device, on one machine or many.

    python -m mockserver --backend ray --models-dir /models --backend-option replicas=2
    python -m mockserver --backend ray --models-dir /models --backend-option address=auto

The HTTP front is unchanged (the Flask app under granian); each server worker sends its
generations to the ``ImageReplica`` deployment through a Serve handle. A replica owns one
:class:`~mockserver.backends.diffusers_backend.DiffusersBackend`, so loading from
``--models-dir``, the catalog's recipes, batching and encoding are that backend's, on the
replica's device (``num_gpus=1`` where the cluster has GPUs). Batching stays the diffusers
backend's batcher: it groups only requests that can share a pipeline call (same model, size,
steps, guidance) and encodes beside the next call, which ``@serve.batch`` would not do without a
second copy of those rules; Serve sends each replica up to ``max_ongoing_requests`` at once for
it to batch.

Who owns what: ``server_scope`` runs in the CLI's process before granian forks its workers. It
starts a keeper process (``python -m mockserver.backends.ray_backend``) that joins the cluster
at ``address`` (or starts a local one), deploys the Serve app unless one of that name already
runs (deployed from a Serve config file, say), and undeploys it, and stops the local cluster,
when the server exits (or its parent dies: the keeper reads its stdin until EOF). The workers
only connect and take a handle.

Faults: a replica that dies mid-request is retried once (Serve routes the retry to a live
replica and replaces the dead one); if that fails too, or Serve's queue is past
``max_queued_requests`` (backpressure), or the answer takes longer than ``timeout_s``, the
request gets 503 ``model_unavailable`` with Retry-After.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import logging
import os
import socket
import subprocess
import sys
import threading
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from secrets import token_hex
from urllib.parse import urlsplit

from mockserver.backends import BackendError, BackendUnavailable
from mockserver.rules import Generation

log = logging.getLogger("mockserver.ray")

APP_NAME = "mockserver"
DEPLOYMENT = "ImageReplica"
# Serve's own options: replicas (or autoscaling bounds), admission and placement.
SERVE_OPTIONS = {
    "replicas",
    "min_replicas",
    "max_replicas",
    "target_ongoing_requests",
    "max_ongoing_requests",
    "max_queued_requests",
    "num_gpus",
    "num_cpus",
}
# The options of the server's workers and of the keeper, not of the replicas.
CLIENT_OPTIONS = {"address", "app_name", "request_timeout_s", "num_cluster_cpus"}


@dataclass
class Catalog:
    """What a DiffusersBackend reads of the spec: the catalog's pipeline recipes. A replica
    gets these, not the spec file, which a remote host may not hold."""

    pipelines: dict


class ImageReplica:
    """One Serve replica: a DiffusersBackend on the replica's device. The generations Serve
    lets in (``max_ongoing_requests``) wait in it at once, a thread each, so that its batcher
    sees them together."""

    def __init__(self, recipes: dict, options: dict):
        from mockserver.backends.diffusers_backend import DiffusersBackend

        self.backend = DiffusersBackend(spec=Catalog(recipes), **options)
        # Threads start as needed; Serve's max_ongoing_requests is the real bound.
        self.waiting = ThreadPoolExecutor(256, thread_name_prefix="waiting")
        self.name = f"{socket.gethostname()}:{os.getpid()}"

    async def generate(self, generation: Generation) -> tuple[str, list[bytes]]:
        loop = asyncio.get_running_loop()
        images = await loop.run_in_executor(self.waiting, self.backend.generate, generation)
        return self.name, images


def split_options(options: dict) -> tuple[dict, dict, dict]:
    """*options* as (the replicas' DiffusersBackend options, Serve's, the client's); an
    unknown option is an error here, not in a replica on another host."""
    from mockserver.backends.diffusers_backend import DiffusersBackend

    diffusers = set(inspect.signature(DiffusersBackend).parameters) - {"spec", "pipelines"}
    unknown = set(options) - diffusers - SERVE_OPTIONS - CLIENT_OPTIONS
    if unknown:
        raise BackendError(
            f"the ray backend has no option {', '.join(sorted(unknown))}; it takes "
            f"{', '.join(sorted(SERVE_OPTIONS | CLIENT_OPTIONS))} and the diffusers "
            f"backend's: {', '.join(sorted(diffusers))}"
        )
    pick = lambda names: {k: v for k, v in options.items() if k in names}  # noqa: E731
    return pick(diffusers), pick(SERVE_OPTIONS), pick(CLIENT_OPTIONS)


def deployment_options(serve_options: dict, *, cluster_gpus: float, cluster_cpus: float) -> dict:
    """Serve's options for ``ImageReplica`` from ours: a GPU per replica where the cluster has
    GPUs; on CPUs, the cluster's CPUs shared out among the most replicas there can be (Ray sets
    each replica's torch threads to its CPUs)."""
    o = serve_options
    max_ongoing = int(o.get("max_ongoing_requests", 16))
    config: dict = {
        "max_ongoing_requests": max_ongoing,
        "max_queued_requests": int(o.get("max_queued_requests", 64)),
        "health_check_period_s": 2,
        "graceful_shutdown_timeout_s": 5,
    }
    if {"min_replicas", "max_replicas", "target_ongoing_requests"} & set(o):
        most = int(o.get("max_replicas", max(1, int(cluster_gpus))))
        config["autoscaling_config"] = {
            "min_replicas": int(o.get("min_replicas", 1)),
            "max_replicas": most,
            "target_ongoing_requests": float(o.get("target_ongoing_requests", max_ongoing / 2)),
        }
    else:
        most = int(o.get("replicas", max(1, int(cluster_gpus))))
        config["num_replicas"] = most
    if "num_gpus" in o or cluster_gpus > 0:
        actor = {"num_gpus": float(o.get("num_gpus", 1)), "num_cpus": float(o.get("num_cpus", 1))}
    else:
        actor = {"num_cpus": float(o.get("num_cpus", max(1, int(cluster_cpus) // most)))}
    config["ray_actor_options"] = actor
    return config


def build_app(recipes: dict, diffusers_options: dict, serve_config: dict):
    """The Serve application: ``ImageReplica`` with *serve_config*."""
    from ray import serve

    deployment = serve.deployment(ImageReplica, name=DEPLOYMENT).options(**serve_config)
    return deployment.bind(recipes, diffusers_options)


def app_builder(args: dict):
    """For a Serve config file (``import_path: mockserver.backends.ray_backend:app_builder``):
    *args* holds ``spec`` (a path; default: the packaged openapi.yaml) and the diffusers
    backend's options (``models_dir``, ``max_batch``, ...). Replicas, autoscaling and
    resources come from the file's ``deployments`` section."""
    from mockserver.spec import DEFAULT_SPEC_PATH, load_spec

    args = dict(args)
    recipes = load_spec(args.pop("spec", DEFAULT_SPEC_PATH)).pipelines
    diffusers, _, _ = split_options(args)
    return build_app(recipes, diffusers, {})


class RayBackend:
    """A client of the ``ImageReplica`` deployment. Options (``--backend-option``): address
    (``auto``, ``HOST:6379`` or ``ray://HOST:10001``: join that cluster; without it start a
    local one), app_name ("mockserver"), replicas (one per GPU, or 1) or autoscaling bounds
    min_replicas, max_replicas, target_ongoing_requests; max_ongoing_requests per replica (16),
    max_queued_requests per server worker (64), num_gpus (1 where the cluster has GPUs) and
    num_cpus per replica, request_timeout_s (the replicas' timeout_s + 10), and the diffusers
    backend's options, which each replica's DiffusersBackend gets.

    Built with an ``address`` it only connects (the server's workers, after ``server_scope``
    deployed the app); without one it runs the whole ``server_scope`` itself until
    :meth:`close`.
    """

    def __init__(self, *, spec, **options):
        diffusers, _, client = split_options(options)
        self._scope = None
        if "address" not in client:
            self._scope = server_scope(spec=spec, **options)
            client = {**client, **self._scope.__enter__()}
        self.app_name = client.get("app_name", APP_NAME)
        self.timeout_s = float(
            client.get("request_timeout_s", float(diffusers.get("timeout_s", 120)) + 10)
        )
        self.served_by: Counter[str] = Counter()  # replica -> generations answered
        self._lock = threading.Lock()
        from ray import serve

        connect(client["address"])
        self.handle = serve.get_deployment_handle(DEPLOYMENT, app_name=self.app_name)

    def generate(self, generation: Generation) -> list[bytes]:
        from ray.exceptions import RayActorError

        for attempt in (1, 2):
            try:
                replica, images = self._ask(generation)
                with self._lock:
                    self.served_by[replica] += 1
                return images
            except RayActorError as exc:
                log.warning("a replica died during a generation (attempt %d): %s", attempt, exc)
        raise BackendUnavailable("the replicas serving this generation died; try again", 10)

    def _ask(self, generation: Generation):
        from ray.exceptions import RayTaskError
        from ray.serve.exceptions import BackPressureError

        try:
            response = self.handle.generate.remote(generation)
            return response.result(timeout_s=self.timeout_s)
        except BackPressureError as exc:
            raise BackendUnavailable(
                "every replica is busy and the queue is full; try again shortly",
                max(1, round(exc.retry_after_s or 5)),
            ) from None
        except TimeoutError:
            response.cancel()
            raise BackendUnavailable(
                f"no answer within {self.timeout_s:g} s", max(1, round(self.timeout_s / 4))
            ) from None
        except RayTaskError as exc:
            if isinstance(exc.cause, BackendUnavailable | BackendError):
                raise exc.cause from None
            raise

    def close(self) -> None:
        """Stops what this backend started (without an ``address``, the whole cluster)."""
        if self._scope is not None:
            import ray

            scope, self._scope = self._scope, None
            ray.shutdown()
            scope.__exit__(None, None, None)


def connect(address: str) -> None:
    """Joins the cluster at *address* as a driver, once per process."""
    import ray
    from ray._raylet import Config

    if ray.is_initialized():
        return
    # Ray reads RAY_AUTH_MODE into its config once; server_scope may have set it since.
    Config.initialize("")
    ray.init(
        address=address, namespace="mockserver", logging_level=logging.WARNING, log_to_driver=False
    )


@contextmanager
def server_scope(*, spec, **options):
    """Joins (or starts) the cluster and deploys the Serve app for all the server's workers,
    through a keeper process; yields the options the workers need (``address``), and tears
    down what it started on exit."""
    diffusers, serve_options, client = split_options(options)
    address = client.get("address")
    if address is not None:
        _check_reachable(address)
    order = {
        "address": address,
        "app_name": client.get("app_name", APP_NAME),
        "num_cluster_cpus": client.get("num_cluster_cpus"),
        "recipes": spec.pipelines,
        "diffusers": diffusers,
        "serve": serve_options,
    }
    with ExitStack() as stack:
        if address is None and "RAY_AUTH_MODE" not in os.environ:
            # A local cluster takes a token of its own; the workers, forked later, inherit it.
            stack.enter_context(_environment(RAY_AUTH_MODE="token", RAY_AUTH_TOKEN=token_hex(32)))
        keeper = subprocess.Popen(
            [sys.executable, "-m", "mockserver.backends.ray_backend"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        keeper.stdin.write(json.dumps(order) + "\n")
        keeper.stdin.flush()
        try:  # the keeper's one line: ready, or why not
            reply = json.loads(keeper.stdout.readline())
        except ValueError:
            reply = {"error": f"the Ray keeper exited ({keeper.wait()}) before it was ready"}
        try:
            if "error" in reply:
                raise BackendError(reply["error"])
            yield {"address": reply["address"], "app_name": order["app_name"]}
        finally:
            keeper.stdin.close()  # EOF: the keeper undeploys and stops what it started
            try:
                keeper.wait(timeout=60)
            except subprocess.TimeoutExpired:
                keeper.kill()


@contextmanager
def _environment(**variables: str):
    saved = {name: os.environ.get(name) for name in variables}
    os.environ.update(variables)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


RayBackend.server_scope = staticmethod(server_scope)  # the CLI enters it before the fork


def _check_reachable(address: str) -> None:
    """Fails at once, with one line, where a cluster's port does not answer (Ray itself
    retries for a minute or more)."""
    if address == "auto":
        return  # Ray finds the local cluster's address on disk, or says it has none
    parts = urlsplit(address if "://" in address else "gcs://" + address)
    host, port = parts.hostname, parts.port or (10001 if parts.scheme == "ray" else 6379)
    try:
        socket.create_connection((host, port), timeout=5).close()
    except OSError as exc:
        raise BackendError(f"cannot reach the Ray cluster at {address}: {exc}") from None


def keep() -> int:
    """The keeper process: reads its orders (one JSON line) on stdin, answers one JSON line
    on stdout, serves until stdin closes, then cleans up."""
    import ray
    from ray import serve

    order = json.loads(sys.stdin.readline())
    stdout, sys.stdout = sys.stdout, sys.stderr  # Ray's chatter must not reach the pipe
    app_name, deployed = order["app_name"], False

    def reply(**fields) -> None:
        stdout.write(json.dumps(fields) + "\n")
        stdout.flush()

    try:
        if order["address"]:
            ray.init(address=order["address"], namespace="mockserver", log_to_driver=False)
        else:
            ray.init(
                num_cpus=order["num_cluster_cpus"] or os.cpu_count(),
                include_dashboard=False,
                namespace="mockserver",
                log_to_driver=False,
            )
        serve.start(proxy_location="Disabled")
        if serve.status().applications.get(app_name, None) is None:
            resources = ray.cluster_resources()
            config = deployment_options(
                order["serve"],
                cluster_gpus=resources.get("GPU", 0),
                cluster_cpus=resources.get("CPU", 1),
            )
            app = build_app(order["recipes"], order["diffusers"], config)
            serve.run(app, name=app_name, route_prefix=None)
            deployed = True
        else:
            log.warning("using the Serve app %r already running in the cluster", app_name)
    except Exception as exc:
        reply(error=f"the Ray cluster at {order['address'] or 'this host'} failed: {exc}")
        return 1
    reply(address=order["address"] or ray.get_runtime_context().gcs_address)
    sys.stdin.read()  # until the server closes it (or dies)
    if deployed:
        serve.delete(app_name)
    if not order["address"]:
        serve.shutdown()
    ray.shutdown()
    return 0


if __name__ == "__main__":
    raise SystemExit(keep())
