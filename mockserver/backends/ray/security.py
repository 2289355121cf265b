"""Ray closed by default: what a server sets before Ray starts, for a local cluster it starts
and for a cluster it joins.

A Ray cluster runs whatever code its callers send it; its ports are the keys to the machine
(Ray's security page; CVE-2023-48022). So:

- **A local cluster** (no ``address``) gets a token of its own, made per server start
  (``RAY_AUTH_MODE=token``, ``RAY_AUTH_TOKEN``: every Ray process checks it on every call, and
  Ray writes no token file), and is bound to loopback: ``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0``
  is Ray's own switch for a single-machine cluster, under which it takes 127.0.0.1 for the
  node's address, and so binds its servers there. Without a dashboard. Serve's replicas still
  listen on every interface (their inter-deployment gRPC binds ``[::]``), behind the token.
- **Joining a cluster** (``address``) needs that cluster's token: ``RAY_AUTH_TOKEN`` (or
  ``RAY_AUTH_TOKEN_PATH``) in the environment or ``--backend-option auth_token=...``. Without
  one the server refuses to start, unless ``insecure_cluster=true`` says the cluster is open on
  purpose; then it prints a warning that names the risk.

Ray reads ``RAY_AUTH_MODE`` when it is first imported: these variables are set before any Ray
import in the process that uses them (the keeper, and the server's workers forked after).
"""

from __future__ import annotations

import os
import sys
from secrets import token_hex
from typing import Any

from mockserver.backends import BackendError
from mockserver.backends.ray.options import flag

TOKEN_VARIABLES = ("RAY_AUTH_TOKEN", "RAY_AUTH_TOKEN_PATH")


def local_cluster_environment(client: dict[str, Any] | None = None) -> dict[str, str]:
    """The variables for a local cluster: token authentication, on loopback. The token is the
    ``auth_token`` option's, else ``RAY_AUTH_TOKEN``'s (a process that imports Ray itself sets
    it first), else a new one for this server."""
    token = (client or {}).get("auth_token") or os.environ.get("RAY_AUTH_TOKEN") or token_hex(32)
    return {
        "RAY_AUTH_MODE": "token",
        "RAY_AUTH_TOKEN": str(token),
        "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0",
    }


def joining_environment(address: str, client: dict[str, Any]) -> dict[str, str]:
    """The variables for joining the cluster at *address*; a BackendError when there is no
    token and ``insecure_cluster`` was not given."""
    if client.get("auth_token"):
        return {"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": str(client["auth_token"])}
    if any(os.environ.get(name) for name in TOKEN_VARIABLES):
        return {"RAY_AUTH_MODE": "token"}
    if flag(client.get("insecure_cluster", False)):
        print(insecure_warning(address), file=sys.stderr, flush=True)
        return {"RAY_AUTH_MODE": "disabled"}
    raise BackendError(
        f"joining the Ray cluster at {address} needs its token: set RAY_AUTH_TOKEN (or "
        "RAY_AUTH_TOKEN_PATH), or --backend-option auth_token=...; "
        "--backend-option insecure_cluster=true joins a cluster without one"
    )


def insecure_warning(address: str) -> str:
    return (
        f"mockserver: warning: joining the Ray cluster at {address} without a token "
        "(insecure_cluster=true): anyone who can reach its ports can run any code on its "
        "hosts and read what they hold"
    )
