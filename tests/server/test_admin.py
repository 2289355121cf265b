"""Who may read and erase the journal: a token when one is set, this host's clients when none
is, and a server that will not listen beyond loopback with neither."""

from __future__ import annotations

import pytest
import requests

from mockserver.admin import is_loopback
from mockserver.app import create_app
from mockserver.config import Config
from tests.support import RunningServer, auth, run_cli

TOKEN = "admin-9f8e7d6c5b4a3210"
ADMIN_ROUTES = [("GET", "/__admin/requests"), ("DELETE", "/__admin/requests"),
                ("GET", "/__admin/state")]  # fmt: skip


@pytest.fixture(scope="module")
def guarded(spec):
    return create_app(Config(admin_token=TOKEN), spec=spec)


@pytest.mark.parametrize(("method", "path"), ADMIN_ROUTES)
@pytest.mark.parametrize(
    ("authorization", "code"),
    [(None, "missing_admin_token"), ("Basic " + TOKEN, "missing_admin_token"),
     ("Bearer wrong-token", "invalid_admin_token"),
     ("Bearer " + TOKEN[:-1], "invalid_admin_token")],
)  # fmt: skip
def test_without_the_token_every_admin_route_is_a_401_problem(
    guarded, method, path, authorization, code
):
    headers = {"Authorization": authorization} if authorization else {}
    answer = guarded.test_client().open(path, method=method, headers=headers)
    assert answer.status_code == 401
    assert answer.mimetype == "application/problem+json"
    assert answer.get_json()["code"] == code
    assert answer.headers["WWW-Authenticate"].startswith('Bearer realm="imageapi-admin"')


def test_with_the_token_the_admin_routes_answer_and_delete_needs_it(guarded):
    client = guarded.test_client()
    client.get("/api/v1/models", headers=auth())
    admin = {"Authorization": f"Bearer {TOKEN}"}
    assert client.delete("/__admin/requests").status_code == 401
    assert len(client.get("/__admin/requests", headers=admin).get_json()["requests"]) == 1
    assert client.get("/__admin/state", headers=admin).status_code == 200
    assert client.delete("/__admin/requests", headers=admin).status_code == 204
    assert client.get("/__admin/requests", headers=admin).get_json()["requests"] == []


@pytest.mark.parametrize("address", ["10.1.2.3", "192.168.0.7", "2001:db8::1"])
def test_without_a_token_only_this_hosts_clients_are_answered(spec, address):
    remote = {"REMOTE_ADDR": address}
    closed = create_app(Config(), spec=spec).test_client()
    answer = closed.get("/__admin/requests", environ_base=remote)
    assert answer.status_code == 403 and answer.get_json()["code"] == "admin_forbidden"
    assert closed.delete("/__admin/requests", environ_base=remote).status_code == 403
    assert closed.get("/__admin/requests").status_code == 200  # 127.0.0.1
    opened = create_app(Config(admin_open=True), spec=spec).test_client()
    assert opened.get("/__admin/requests", environ_base=remote).status_code == 200


@pytest.mark.parametrize(
    ("host", "answered"),
    [("localhost", True), ("localhost:8000", True), ("127.0.0.1:8000", True), ("[::1]:8000", True),
     ("attacker.test", False), ("attacker.test:8000", False), ("127.0.0.1.nip.io", False)],
)  # fmt: skip
def test_a_rebound_name_on_this_host_is_not_answered(spec, host, answered):
    """DNS rebinding: a page on attacker.test whose name now resolves to 127.0.0.1 sends
    ``Host: attacker.test`` from a loopback address; without a token it must not read the
    journal (nor empty it)."""
    client = create_app(Config(), spec=spec).test_client()
    for method in ("GET", "DELETE"):
        answer = client.open("/__admin/requests", method=method, headers={"Host": host})
        if answered:
            assert answer.status_code in (200, 204)
        else:
            assert answer.status_code == 403 and answer.get_json()["code"] == "admin_forbidden"
    with_token = create_app(Config(admin_token=TOKEN), spec=spec).test_client()
    headers = {"Host": "attacker.test", "Authorization": f"Bearer {TOKEN}"}
    assert with_token.get("/__admin/requests", headers=headers).status_code == 200


@pytest.mark.parametrize(
    ("host", "loopback"),
    [("127.0.0.1", True), ("127.8.9.1", True), ("::1", True), ("[::1]", True),
     ("localhost", True), ("::ffff:127.0.0.1", True), ("0.0.0.0", False), ("::", False),
     ("10.0.0.1", False), ("myhost.example", False)],
)  # fmt: skip
def test_loopback(host, loopback):
    assert is_loopback(host) is loopback


@pytest.mark.parametrize(
    "args", [["--host", "0.0.0.0"], ["--host", "::"], ["--host", "0.0.0.0", "--admin-token", "a b"]]
)
def test_a_reachable_admin_surface_needs_a_token_or_admin_open(args):
    result = run_cli(*args, "--port", "1")  # the check comes before the port is bound
    assert result.returncode == 2
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert "admin" in result.stderr


def test_a_server_on_all_addresses_with_a_token_guards_its_journal():
    server = RunningServer("--host", "0.0.0.0", "--workers", "1", env={
        "MOCKSERVER_ADMIN_TOKEN": TOKEN})  # fmt: skip
    try:
        requests.get(server.url + "/api/v1/models", headers=auth(), timeout=10)
        refused = requests.delete(server.url + "/__admin/requests", timeout=10)
        journal = requests.get(
            server.url + "/__admin/requests",
            headers={"Authorization": f"Bearer {TOKEN}"},
            timeout=10,
        )
    finally:
        output = server.stop()
    assert refused.status_code == 401 and refused.json()["code"] == "missing_admin_token"
    assert journal.status_code == 200 and len(journal.json()["requests"]) == 1
    assert "needs the admin token" in output and TOKEN not in output


@pytest.mark.parametrize("limit", ["0", "-1", "abc", "1.5", "٣"])
def test_a_limit_that_is_not_a_positive_whole_number_is_a_400(spec, limit):
    client = create_app(Config(), spec=spec).test_client()
    answer = client.get(f"/__admin/requests?limit={limit}")
    assert answer.status_code == 400
    assert answer.mimetype == "application/problem+json"
    assert answer.get_json()["code"] == "invalid_request"
    client.get("/api/v1/models", headers=auth())
    client.get("/api/v1/models", headers=auth())
    assert len(client.get("/__admin/requests?limit=1").get_json()["requests"]) == 1


def test_without_a_journal_its_route_says_so(spec):
    client = create_app(Config(journal_size=0), spec=spec).test_client()
    for method in ("GET", "DELETE"):
        answer = client.open("/__admin/requests", method=method)
        assert answer.status_code == 404 and answer.mimetype == "application/problem+json"
        assert answer.get_json()["code"] == "journal_off"
    assert client.get("/__admin/state").get_json()["journal_size"] == 0
