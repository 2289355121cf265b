"""The keeper: the process that holds the cluster and the Serve app for all of a server's
workers (``python -m mockserver.backends.ray.keeper``, started by ``client.server_scope``).

Its protocol, over its standard streams: the server writes one JSON line of orders
(``address``, ``app_name``, ``num_cluster_cpus``, ``recipes``, ``diffusers``, ``serve``); the
keeper joins the cluster at ``address`` (or starts a local one on loopback, with the token in
its environment: see ``security``), deploys the Serve app unless one of that name already runs,
and answers one JSON line: ``{"address": ...}`` when ready, ``{"error": ...}`` if not. It then
reads stdin until EOF (the server closed it, or died), undeploys what it deployed, stops the
local cluster it started, and exits.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from typing import Any

log = logging.getLogger("mockserver.ray")


def keep() -> int:
    """The keeper's life: orders, one answer, serve until stdin closes, clean up."""
    import ray
    from ray import serve

    from mockserver.backends.ray.replica import build_app, deployment_options

    order: dict[str, Any] = json.loads(sys.stdin.readline())
    stdout, sys.stdout = sys.stdout, sys.stderr  # Ray's chatter must not reach the pipe
    app_name, deployed = order["app_name"], False

    def reply(**fields: Any) -> None:
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
