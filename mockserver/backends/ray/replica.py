"""The Serve side: ``ImageReplica``, one diffusers backend per replica, and the Serve options
and application made from ours. Imported in the replicas (on any host of the cluster)."""

from __future__ import annotations

import asyncio
import os
import socket
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from mockserver.backends.ray.options import DEPLOYMENT, split_options
from mockserver.rules import Generation


@dataclass
class Catalog:
    """What a DiffusersBackend reads of the spec: the catalog's pipeline recipes. A replica
    gets these, not the spec file, which a remote host may not hold."""

    pipelines: dict[str, dict[str, Any]]


class ImageReplica:
    """One Serve replica: a DiffusersBackend on the replica's device. The generations Serve
    lets in (``max_ongoing_requests``) wait in it at once, a thread each, so that its batcher
    sees them together."""

    def __init__(self, recipes: dict[str, dict[str, Any]], options: dict[str, Any]) -> None:
        from mockserver.backends.diffusers.backend import DiffusersBackend

        self.backend = DiffusersBackend(spec=Catalog(recipes), **options)
        # Threads start as needed; Serve's max_ongoing_requests is the real bound.
        self.waiting = ThreadPoolExecutor(256, thread_name_prefix="waiting")
        self.name = f"{socket.gethostname()}:{os.getpid()}"

    async def generate(self, generation: Generation) -> tuple[str, list[bytes]]:
        loop = asyncio.get_running_loop()
        images = await loop.run_in_executor(self.waiting, self.backend.generate, generation)
        return self.name, images


def deployment_options(
    serve_options: dict[str, Any], *, cluster_gpus: float, cluster_cpus: float
) -> dict[str, Any]:
    """Serve's options for ``ImageReplica`` from ours: a GPU per replica where the cluster has
    GPUs; on CPUs, the cluster's CPUs shared out among the most replicas there can be (Ray sets
    each replica's torch threads to its CPUs)."""
    o = serve_options
    max_ongoing = int(o.get("max_ongoing_requests", 16))
    config: dict[str, Any] = {
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


def build_app(
    recipes: dict[str, dict[str, Any]], diffusers_options: dict[str, Any], config: dict[str, Any]
) -> Any:
    """The Serve application: ``ImageReplica`` with Serve's *config*."""
    from ray import serve

    deployment = serve.deployment(ImageReplica, name=DEPLOYMENT).options(**config)
    return deployment.bind(recipes, diffusers_options)


def app_builder(args: dict[str, Any]) -> Any:
    """For a Serve config file (``import_path: mockserver.backends.ray.replica:app_builder``):
    *args* holds ``spec`` (a path; default: the packaged openapi.yaml) and the diffusers
    backend's options (``models_dir``, ``max_batch``, ...). Replicas, autoscaling and
    resources come from the file's ``deployments`` section."""
    from mockserver.spec import DEFAULT_SPEC_PATH, load_spec

    args = dict(args)
    recipes = load_spec(args.pop("spec", DEFAULT_SPEC_PATH)).pipelines
    diffusers, _, _ = split_options(args)
    return build_app(recipes, diffusers, {})
