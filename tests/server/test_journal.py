"""The request journal: what the UI sent, newest first, no secret in it, bounded in size,
resettable, quick to read."""

from __future__ import annotations

import base64
import json
import os
import re
import signal
import subprocess
import time

import pytest
import requests

from mockserver.app import create_app
from mockserver.auth import mask
from mockserver.config import Config
from mockserver.journal import MAX_BODY_CHARS, MAX_HEADER_CHARS, Journal
from mockserver.store import EmbeddedStore
from tests.support import KEY_FOR_PLAN, RunningServer, auth

# Keys of several shapes, as a --keys file may hold them.
KEYS = {
    "alice-3f9a5d2e7b41c0": "pro",  # no sk_ prefix
    "sk_live_abc.SECRETPART.xyz": "basic",  # dotted: the middle is as secret as the rest
    "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2lnbmF0dXJl": "free",  # a JWT
}
BASIC = base64.b64encode(b"bob:hunter2-BASICSECRET").decode()
COOKIE = "session=COOKIESECRET42; theme=dark"


def pieces(secret: str) -> list[str]:
    """A secret and the parts of it that must not survive on their own."""
    parts = [part for part in secret.replace("_", ".").split(".") if len(part) >= 6]
    return [secret, *parts, secret[-10:]]


SECRETS = [
    piece
    for secret in [*KEYS, BASIC, "hunter2-BASICSECRET", "COOKIESECRET42", "QUERYSECRET99"]
    for piece in pieces(secret)
]


def send_secrets(send) -> None:
    """Requests carrying every secret in every place a client may put one; *send(method, path,
    **kwargs)* makes a request."""
    alice, dotted, jwt = KEYS
    send("GET", "/api/v1/models", headers={"Authorization": f"Bearer {alice}"})
    send("GET", "/api/v1/models?api_key=QUERYSECRET99&page=2", headers={"Cookie": COOKIE})
    send("GET", f"/api/v1/models/{dotted}", headers={"Authorization": f"Bearer {dotted}"})
    send("GET", "/api/v1/models", headers={"Authorization": f"Basic {BASIC}"})
    send("GET", "/api/v1/models", headers={"Proxy-Authorization": f"Bearer {jwt}"})
    send("GET", "/api/v1/models", headers={"X-Api-Key": jwt})
    send("GET", f"/api/v1/models?note={alice}")
    send(
        "POST",
        "/api/v1/generate",
        json={"prompt": f"my key is {alice}, and {dotted}", "width": 256, "height": 256},
        headers={"Authorization": f"Bearer {alice}"},
    )


ACCESS_LINE = re.compile(r"^\d\d:\d\d:\d\d [A-Z]+ /")


def access_lines(output: str, under: str = "/") -> list[str]:
    """The server's access log lines for paths under *under*."""
    return [
        line
        for line in output.splitlines()
        if ACCESS_LINE.match(line) and line.split()[2].startswith(under)
    ]


def assert_no_secret(text: str) -> None:
    for secret in SECRETS:
        assert secret not in text, f"{secret!r} leaked"


def test_keys_of_every_shape_are_masked_wherever_they_were_sent(spec):
    app = create_app(Config(keys=KEYS, journal_size=50), spec=spec)
    client = app.test_client(use_cookies=False)  # a jar would replace the Cookie header sent
    send_secrets(lambda method, path, **kwargs: client.open(path, method=method, **kwargs))
    answer = client.get("/__admin/requests")
    assert_no_secret(answer.get_data(as_text=True))
    entries = answer.get_json()["requests"]
    assert len(entries) == 8
    generate, by_query, basic = entries[0], entries[6], entries[4]
    alice = next(iter(KEYS))
    assert generate["status"] == 200
    assert generate["headers"]["Authorization"] == f"Bearer {mask(alice)}"
    assert generate["body"]["prompt"].startswith(f"my key is {mask(alice)}, and [redacted ")
    assert by_query["query"].startswith("api_key=[redacted ") and "page=2" in by_query["query"]
    assert by_query["headers"]["Cookie"].startswith("session=[redacted ")
    assert basic["headers"]["Authorization"] == f"Basic {mask(BASIC)}"
    assert entries[1]["query"] == f"note={mask(alice)}"


def test_requests_are_journaled_newest_first(spec):
    client = create_app(Config(journal_size=3), spec=spec).test_client()
    client.post("/api/v1/generate", json={"prompt": "first"}, headers=auth("pro"))
    client.post("/api/v1/generate", json={"prompt": "p", "num_inference_steps": 0}, headers=auth())
    client.get("/api/v1/models", headers={"Authorization": "Bearer sk_wrong_key_123"})
    entries = client.get("/__admin/requests").get_json()["requests"]
    assert [e["status"] for e in entries] == [401, 400, 200]
    assert entries[0]["code"] == "invalid_api_key"
    assert entries[1]["code"] == "step_cap_exceeded"
    assert entries[1]["body"] == {"prompt": "p", "num_inference_steps": 0}
    assert entries[2]["body"] == {"prompt": "first"}
    assert entries[2]["method"] == "POST" and entries[2]["path"] == "/api/v1/generate"
    assert entries[2]["truncated"] == {}
    text = client.get("/__admin/requests").get_data(as_text=True)
    assert KEY_FOR_PLAN["pro"] not in text and "sk_wrong_key_123" not in text


def record(journal: Journal, index: int = 0, *, headers=None, body: bytes = b"") -> None:
    journal.record(
        method="GET", path=f"/{index}", query="", headers=headers or {}, body=body, status=200,
        code=None, duration_ms=1,
    )  # fmt: skip


def test_the_journal_keeps_the_last_n_and_can_be_cleared():
    journal = Journal(EmbeddedStore(), size=5)
    for i in range(200):
        record(journal, i)
    assert [e["path"] for e in journal.entries()] == ["/199", "/198", "/197", "/196", "/195"]
    assert len(journal.entries(limit=2)) == 2
    journal.clear()
    assert journal.entries() == []


def test_headers_and_bodies_are_cut_and_marked():
    journal = Journal(EmbeddedStore())
    body = json.dumps({"prompt": "x" * 100_000}).encode()
    many = {f"X-Filler-{i}": "f" * 6000 for i in range(10)}
    record(journal, headers={"X-Big": "b" * 400_000, **many}, body=body)
    [entry] = journal.entries()
    assert entry["headers"]["X-Big"] == "b" * MAX_HEADER_CHARS
    assert entry["body"] == body[:MAX_BODY_CHARS].decode()  # cut JSON is kept as text
    assert entry["truncated"]["headers.X-Big"] == 400_000
    assert entry["truncated"]["body"] == len(body)
    assert entry["truncated"]["headers"] == 11  # the request had 11; those that fit are kept
    assert 0 < len(entry["headers"]) < 11
    assert len(json.dumps(entry)) < 110_000


def test_the_journal_is_bounded_in_bytes():
    journal = Journal(EmbeddedStore(), size=200, max_bytes=100_000)
    for i in range(50):
        record(journal, i, headers={"X-Filler": "f" * 8000})
    texts = journal.texts()
    assert sum(len(text) for text in texts) <= 100_000
    assert 5 <= len(texts) < 50
    assert json.loads(texts[0])["path"] == "/49"  # the newest stay


def test_a_body_json_cannot_carry_back_is_kept_as_text(client):
    journal = Journal(EmbeddedStore())
    record(journal, body=b'{"prompt": 1e400}')
    assert journal.entries()[0]["body"] == '{"prompt": 1e400}'


def test_delete_resets_it(client):
    client.get("/api/v1/models", headers=auth())
    assert client.get("/__admin/requests").get_json()["requests"]
    assert client.delete("/__admin/requests").status_code == 204
    assert client.get("/__admin/requests").get_json()["requests"] == []


def test_the_workers_of_a_server_share_one_journal(server):
    requests.delete(server.url + "/__admin/requests", timeout=10)
    for i in range(12):
        requests.post(
            server.url + "/api/v1/generate",
            json={"prompt": f"request {i}", "width": 256, "height": 256},
            headers=auth(),
            timeout=30,
        )
    prompts = [
        e["body"]["prompt"]
        for e in requests.get(server.url + "/__admin/requests", timeout=10).json()["requests"]
    ]
    assert prompts == [f"request {i}" for i in reversed(range(12))]


def test_no_secret_reaches_the_journal_or_the_log_of_a_real_server(tmp_path):
    keys = tmp_path / "keys.json"
    keys.write_text(json.dumps(KEYS))
    server = RunningServer("--workers", "2", "--keys", str(keys), "--no-rate-limits")
    try:
        send_secrets(
            lambda method, path, **kwargs: requests.request(
                method, server.url + path, timeout=30, **kwargs
            )
        )
        journal = requests.get(server.url + "/__admin/requests", timeout=10)
        assert len(journal.json()["requests"]) == 8
    finally:
        output = server.stop()
    assert_no_secret(journal.text)
    assert_no_secret(output)
    lines = access_lines(output, "/api/v1/")
    assert len(lines) == 8, output[-3000:]
    assert any(" GET /api/v1/models 200 " in line and line.endswith(" ms pro") for line in lines)
    assert any(" GET /api/v1/models 401 " in line and "- missing_api_key" in line for line in lines)
    assert any(" POST /api/v1/generate 200 " in line for line in lines)


HEADER_VALUE = "h" * 8000  # seven of them: just under the 64 KiB the guard accepts


def test_large_headers_leave_the_journal_and_each_read_under_its_byte_bound(server):
    """200 keyless requests with the largest headers the server accepts, and 431s with more."""
    bound = 4 * 1024 * 1024  # the default --journal-bytes
    requests.delete(server.url + "/__admin/requests", timeout=10)
    large = {f"X-Large-{i}": HEADER_VALUE for i in range(7)}
    with requests.Session() as session:
        statuses = {
            session.get(server.url + "/api/v1/models", headers=large, timeout=30).status_code
            for _ in range(200)
        }
        refused = [
            session.get(
                server.url + "/api/v1/models", headers={"X-Huge": "x" * size}, timeout=30
            ).status_code
            for size in (100_000, 400_000)
        ]
    assert statuses == {401}
    assert refused == [431, 431]  # the guard's, or for 400 KB perhaps granian's own
    reads = [
        requests.get(server.url + "/__admin/requests", timeout=30),
        requests.get(server.url + "/__admin/requests?limit=1000", timeout=30),
    ]
    try:
        for read in reads:
            assert len(read.content) <= bound + 200
        entries = reads[0].json()["requests"]
        assert 100 <= len(entries) < 200  # the bound in bytes, not in rows, decides
        huge = [entry for entry in entries if entry["status"] == 431]
        assert huge and huge[-1]["truncated"]["headers.X-Huge"] == 100_000
        for entry in huge:
            assert entry["code"] == "headers_too_large" and len(json.dumps(entry)) < 40_000
        assert {entry["code"] for entry in entries[len(huge) :]} == {"missing_api_key"}
    finally:
        requests.delete(server.url + "/__admin/requests", timeout=10)


def worker_pids(server: RunningServer) -> list[int]:
    found = subprocess.run(
        ["pgrep", "-P", str(server.process.pid)], capture_output=True, text=True
    ).stdout.split()
    return [int(pid) for pid in found]


def admin_read_ms(server: RunningServer) -> float:
    started = time.perf_counter()
    answer = requests.get(server.url + "/__admin/requests", timeout=10)
    assert answer.status_code == 200
    return (time.perf_counter() - started) * 1000


def test_admin_reads_are_prompt_on_a_fresh_server_and_after_a_respawn():
    """Functional, loosely bounded: a read used to wait 2 s for a worker that had read once
    (and never written since) or that was gone."""
    server = RunningServer("--workers", "2", "--quiet")
    try:
        fresh = [admin_read_ms(server) for _ in range(6)]
        for _ in range(6):
            requests.get(server.url + "/api/v1/models", headers=auth(), timeout=10)
        admin_read_ms(server)  # every worker's rows are written now
        pids = worker_pids(server)
        assert len(pids) == 2
        os.kill(pids[0], signal.SIGKILL)
        # Until the new worker has started (granian, stopped while one starts, hangs for 10 s).
        deadline = time.monotonic() + 60  # a busy machine takes its time to start one
        while server.output().count("Started worker-") < 3:
            now = worker_pids(server)
            if len(now) == 2 and pids[0] not in now and time.monotonic() > deadline - 50:
                break  # respawned; its start may not be logged yet
            assert time.monotonic() < deadline, f"not respawned: {server.output()[-800:]}"
            time.sleep(0.05)
        respawned = [admin_read_ms(server) for _ in range(6)]
        entries = requests.get(server.url + "/__admin/requests", timeout=10).json()["requests"]
    finally:
        server.stop()
    assert max(fresh) < 1000, fresh
    assert max(respawned) < 1000, respawned
    assert len(entries) == 6


@pytest.mark.parametrize("quiet", [False, True])
def test_the_access_log_has_a_line_per_request_and_quiet_turns_it_off(quiet):
    args = ["--workers", "1", *(["--quiet"] if quiet else [])]
    server = RunningServer(*args)
    try:
        requests.get(server.url + "/api/v1/models?api_key=QUERYSECRET99", headers=auth("pro"))
        requests.post(server.url + "/api/v1/generate", json={"prompt": "p"})
        requests.get(server.url + "/openapi.json", timeout=10)
    finally:
        output = server.stop()
    logged = "\n".join(access_lines(output))  # the banner shows the public dev keys, on purpose
    assert "QUERYSECRET99" not in output and KEY_FOR_PLAN["pro"] not in logged
    lines = access_lines(output, "/api/v1/") + access_lines(output, "/openapi.json")
    if quiet:
        assert access_lines(output) == []
        return
    assert len(lines) == 3, output[-2000:]
    assert " GET /api/v1/models 200 " in lines[0] and lines[0].endswith(" ms pro")
    assert " POST /api/v1/generate 401 " in lines[1]
    assert lines[1].endswith(" ms - missing_api_key")
    assert " GET /openapi.json 200 " in lines[2]
