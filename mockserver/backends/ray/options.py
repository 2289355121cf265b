"""The ray backend's options, told apart: the replicas' (the diffusers backend's, read from its
options dataclass), Serve's, and those of the server's side (the client and the keeper). An
unknown option, or a diffusers option of the wrong kind, is an error here, at start, not in a
replica on another host."""

from __future__ import annotations

from typing import Any

from mockserver.backends import BackendError
from mockserver.backends.diffusers.options import DiffusersOptions

APP_NAME = "mockserver"
DEPLOYMENT = "ImageReplica"
# Serve's own options: replicas (or autoscaling bounds), admission and placement.
SERVE_OPTIONS = frozenset(
    {
        "replicas",
        "min_replicas",
        "max_replicas",
        "target_ongoing_requests",
        "max_ongoing_requests",
        "max_queued_requests",
        "num_gpus",
        "num_cpus",
    }
)
# The options of the server's workers and of the keeper, not of the replicas; the last two
# are how a server joins a cluster (see ``security``).
CLIENT_OPTIONS = frozenset(
    {
        "address",
        "app_name",
        "request_timeout_s",
        "num_cluster_cpus",
        "auth_token",
        "insecure_cluster",
    }
)


def split_options(options: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """*options* as (the replicas' DiffusersBackend options, Serve's, the client's)."""
    diffusers = DiffusersOptions.names()
    unknown = set(options) - diffusers - SERVE_OPTIONS - CLIENT_OPTIONS
    if unknown:
        raise BackendError(
            f"the ray backend has no option {', '.join(sorted(unknown))}; it takes "
            f"{', '.join(sorted(SERVE_OPTIONS | CLIENT_OPTIONS))} and the diffusers "
            f"backend's: {', '.join(sorted(diffusers))}"
        )

    def pick(names: frozenset[str]) -> dict[str, Any]:
        return {k: v for k, v in options.items() if k in names}

    replica = pick(diffusers)
    DiffusersOptions.parse(replica)  # refused here, with the option's name
    return replica, pick(SERVE_OPTIONS), pick(CLIENT_OPTIONS)


def flag(value: Any) -> bool:
    """An on/off option's value: JSON true/false, or the text."""
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "false", "1", "0", "yes", "no"):
        return value.lower() in ("true", "1", "yes")
    raise BackendError(f"expected true or false, not {value!r}")
