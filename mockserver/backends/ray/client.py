"""The ray backend: the diffusers backend's pipelines in a Ray Serve deployment, one replica per
device, on one machine or many.

    python -m mockserver --backend ray --models-dir /models --backend-option replicas=2
    RAY_AUTH_TOKEN=... python -m mockserver --backend ray --backend-option address=HOST:6379

The HTTP front is unchanged (the Flask app under granian); each server worker sends its
generations to the ``ImageReplica`` deployment (``replica``) through a Serve handle. Batching
stays the diffusers backend's, in each replica; Serve sends each replica up to
``max_ongoing_requests`` at once for it to batch.

Who owns what: ``server_scope`` runs in the CLI's process before granian forks its workers. It
sets Ray's security variables (``security``), starts the keeper (``keeper``), which joins the
cluster at ``address`` or starts a local one and deploys the Serve app, and stops it when the
server exits. The workers only connect and take a handle.

Faults: a replica that dies mid-request is retried once (Serve routes the retry to a live
replica and replaces the dead one); if that fails too, or Serve's queue is past
``max_queued_requests`` (backpressure), or the answer takes longer than ``timeout_s``, the
request gets 503 ``model_unavailable`` with Retry-After.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import subprocess
import sys
import threading
from collections import Counter
from collections.abc import Iterator
from contextlib import AbstractContextManager, ExitStack, contextmanager
from typing import Any
from urllib.parse import urlsplit

from mockserver.backends import BackendError, BackendUnavailable
from mockserver.backends.ray import security
from mockserver.backends.ray.options import APP_NAME, DEPLOYMENT, split_options
from mockserver.rules import Generation

log = logging.getLogger("mockserver.ray")


class RayBackend:
    """A client of the ``ImageReplica`` deployment. Options (``--backend-option``): address
    (``auto``, ``HOST:6379`` or ``ray://HOST:10001``: join that cluster; without it start a
    local one), auth_token (the cluster's token, else ``RAY_AUTH_TOKEN``), insecure_cluster
    (join a cluster without a token), app_name ("mockserver"), replicas (one per GPU, or 1) or
    autoscaling bounds min_replicas, max_replicas, target_ongoing_requests;
    max_ongoing_requests per replica (16), max_queued_requests per server worker (64), num_gpus
    (1 where the cluster has GPUs) and num_cpus per replica, request_timeout_s (the replicas'
    timeout_s + 10), and the diffusers backend's options, which each replica's DiffusersBackend
    gets.

    Built with an ``address`` it only connects (the server's workers, after ``server_scope``
    deployed the app); without one it runs the whole ``server_scope`` itself until
    :meth:`close` (Ray must not have been imported in this process before).
    """

    def __init__(self, *, spec: Any, **options: Any) -> None:
        diffusers, _, client = split_options(options)
        self._scope: AbstractContextManager[dict[str, Any]] | None = None
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

    def _ask(self, generation: Generation) -> tuple[str, list[bytes]]:
        from ray.exceptions import RayTaskError
        from ray.serve.exceptions import BackPressureError

        response = self.handle.generate.remote(generation)
        try:
            answer: tuple[str, list[bytes]] = response.result(timeout_s=self.timeout_s)
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
        return answer

    def close(self) -> None:
        """Stops what this backend started (without an ``address``, the whole cluster)."""
        if self._scope is not None:
            import ray

            scope, self._scope = self._scope, None
            ray.shutdown()
            scope.__exit__(None, None, None)

    server_scope: Any  # set below: the CLI enters it before the fork


def connect(address: str) -> None:
    """Joins the cluster at *address* as a driver, once per process."""
    import ray

    if ray.is_initialized():
        return
    ray.init(
        address=address, namespace="mockserver", logging_level=logging.WARNING, log_to_driver=False
    )


@contextmanager
def server_scope(*, spec: Any, **options: Any) -> Iterator[dict[str, Any]]:
    """Joins (or starts) the cluster and deploys the Serve app for all the server's workers,
    through the keeper; yields the options the workers need (``address``), and tears down what
    it started on exit. Ray's security variables stay set meanwhile, for the workers."""
    diffusers, serve_options, client = split_options(options)
    address = client.get("address")
    if address is None:
        variables = security.local_cluster_environment(client)
    else:
        variables = security.joining_environment(address, client)
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
        stack.enter_context(_environment(**variables))
        keeper = subprocess.Popen(
            [sys.executable, "-m", "mockserver.backends.ray.keeper"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert keeper.stdin is not None and keeper.stdout is not None  # both are PIPE
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


RayBackend.server_scope = staticmethod(server_scope)


@contextmanager
def _environment(**variables: str) -> Iterator[None]:
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
