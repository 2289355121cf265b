"""Ray closed by default: a server with ``--backend ray`` and no cluster of its own to join
starts a local one that no other machine can use. Every port its processes listen on is on
loopback, or refuses a call that does not carry the server's token."""

from __future__ import annotations

import ipaddress
import os
import socket

import psutil
import pytest

pytest.importorskip("diffusers", reason="the ray backend needs pip install '.[gpu,ray]'")
pytest.importorskip("ray", reason="the ray backend needs pip install '.[ray]'")
grpc = pytest.importorskip("grpc", reason="Ray's gRPC client comes with ray")

from tests.support import RunningServer  # noqa: E402

# A method every Serve replica's gRPC server has; Ray's own servers share the interceptor.
SERVE_METHOD = "/ray.serve.ASGIService/HandleRequest"
RAY_VARIABLES = ("RAY_AUTH_MODE", "RAY_AUTH_TOKEN", "RAY_AUTH_TOKEN_PATH")


def listeners(root: int) -> list[tuple[str, int, str]]:
    """(address, port, process name) of every TCP port that *root* and its descendants listen on."""
    parent = psutil.Process(root)
    pids = {root} | {child.pid for child in parent.children(recursive=True)}
    found = []
    for conn in psutil.net_connections(kind="tcp"):
        if conn.status == psutil.CONN_LISTEN and conn.pid in pids:
            try:
                name = psutil.Process(conn.pid).name()
            except psutil.NoSuchProcess:
                continue
            found.append((conn.laddr.ip, conn.laddr.port, name))
    return sorted(found)


def on_loopback(address: str) -> bool:
    ip = ipaddress.ip_address(address)
    mapped = getattr(ip, "ipv4_mapped", None)  # ::ffff:127.0.0.1, an IPv6 socket on loopback
    return (mapped or ip).is_loopback


def outside_address() -> str:
    """This machine's address as another host would call it (loopback where it has none)."""
    for addresses in psutil.net_if_addrs().values():
        for address in addresses:
            if address.family == socket.AF_INET and not address.address.startswith("127."):
                return address.address
    return "127.0.0.1"


def unauthenticated_call(host: str, port: int) -> grpc.StatusCode:
    with grpc.insecure_channel(f"{host}:{port}") as channel:
        call = channel.unary_unary(SERVE_METHOD)
        try:
            call(b"", timeout=20)
        except grpc.RpcError as error:
            return error.code()
    return grpc.StatusCode.OK


@pytest.fixture(scope="module")
def server(models_dir):
    """A real server on a local cluster it starts, in an environment without Ray's settings:
    what it sets, it sets itself."""
    saved = {name: os.environ.pop(name) for name in RAY_VARIABLES if name in os.environ}
    saved.update(
        RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=os.environ.pop("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "")
    )
    try:  # RunningServer passes this process's environment on
        server = RunningServer(
            "--backend", "ray", "--models-dir", str(models_dir),
            "--backend-option", "replicas=1", "--backend-option", "num_cluster_cpus=2",
            ready_within=300,
        )  # fmt: skip
    finally:
        os.environ.update({name: value for name, value in saved.items() if value})
    try:
        yield server
    finally:
        server.stop()


def test_every_ray_listener_is_on_loopback_or_refuses_a_caller_without_the_token(server):
    found = listeners(server.process.pid)
    ray_ports = [entry for entry in found if entry[1] != server.port]
    assert len(ray_ports) >= 5, found  # the GCS, the raylet, the replica and the rest
    exposed = [entry for entry in ray_ports if not on_loopback(entry[0])]
    print(f"{len(ray_ports)} Ray listeners, {len(exposed)} not on loopback: {found}")
    outside = outside_address()
    for address, port, name in exposed:
        code = unauthenticated_call(outside, port)
        assert code == grpc.StatusCode.UNAUTHENTICATED, (address, port, name, code)
