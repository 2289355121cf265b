"""Faults as a client meets them, from a real server under granian: each transport fault on a
raw socket and through requests and httpx, a seeded run of 1,000 requests across 2 workers that
meets exactly the faults its seed gives, and sequences shared by 2 workers and by 2 hosts on one
Redis."""

from __future__ import annotations

import json
import socket
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
import requests

from tests.server.test_state import redis_server  # noqa: F401  (a fixture)
from tests.support import KEY_FOR_PLAN, RunningServer, auth
from tests.unit.test_faults import independent_draw

GENERATE = "/api/v1/generate"
BODY = {"prompt": "a red fox", "width": 512, "height": 512}


@pytest.fixture(scope="module")
def faulty():
    running = RunningServer("--workers", "2", "--no-rate-limits", "--quiet")
    yield running
    running.stop()


def raw_exchange(url: str, fault: str) -> tuple[bytes, str, float]:
    """Send a generation asking for *fault* on a bare socket: every byte that came back, how
    the connection ended, and how long the answer took."""
    host, port = url.removeprefix("http://").split(":")
    body = json.dumps(BODY).encode()
    request = (
        f"POST {GENERATE} HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer "
        f"{KEY_FOR_PLAN['enterprise']}\r\nContent-Type: application/json\r\n"
        f"Prefer: fault={fault}\r\nContent-Length: {len(body)}\r\n\r\n"
    ).encode() + body
    started = time.monotonic()
    with socket.create_connection((host, int(port)), timeout=30) as sock:
        sock.sendall(request)
        data, ending = b"", "open"
        try:
            while chunk := sock.recv(65536):
                data += chunk
            ending = "closed"
        except ConnectionResetError:
            ending = "reset"
        except TimeoutError:
            ending = "timed out"
    return data, ending, time.monotonic() - started


def split(data: bytes) -> tuple[dict[str, str], bytes]:
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode().split("\r\n")
    headers = dict(line.split(": ", 1) for line in lines[1:])
    return {name.lower(): value for name, value in headers.items()}, body


def test_reset_closes_the_connection_without_a_byte(faulty):
    data, ending, _ = raw_exchange(faulty.url, "reset")
    assert (data, ending) == (b"", "closed")
    with pytest.raises(requests.ConnectionError, match="without response|aborted"):
        requests.post(faulty.url + GENERATE, json=BODY, timeout=30,
                      headers={**auth(), "Prefer": "fault=reset"})  # fmt: skip
    with pytest.raises(httpx.RemoteProtocolError, match="without sending"):
        httpx.post(faulty.url + GENERATE, json=BODY, timeout=30,
                   headers={**auth(), "Prefer": "fault=reset"})  # fmt: skip
    assert faulty.alive()


def test_empty_sends_the_head_then_closes(faulty):
    data, ending, _ = raw_exchange(faulty.url, "empty")
    headers, body = split(data)
    assert data.startswith(b"HTTP/1.1 200 ") and ending == "closed"
    assert int(headers["content-length"]) > 1000 and body == b""
    with pytest.raises(requests.exceptions.ChunkedEncodingError, match=r"IncompleteRead\(0 bytes"):
        requests.post(faulty.url + GENERATE, json=BODY, timeout=30,
                      headers={**auth(), "Prefer": "fault=empty"})  # fmt: skip
    with pytest.raises(httpx.RemoteProtocolError, match="without sending complete message body"):
        httpx.post(faulty.url + GENERATE, json=BODY, timeout=30,
                   headers={**auth(), "Prefer": "fault=empty"})  # fmt: skip


def test_truncate_cuts_the_json_body_half_way(faulty):
    data, ending, _ = raw_exchange(faulty.url, "truncate")
    headers, body = split(data)
    assert ending == "closed" and len(body) == int(headers["content-length"]) // 2
    with pytest.raises(json.JSONDecodeError):
        json.loads(body)
    assert body.startswith(b'{"id":"gen_')
    with pytest.raises(requests.exceptions.ChunkedEncodingError, match="IncompleteRead"):
        requests.post(faulty.url + GENERATE, json=BODY, timeout=30,
                      headers={**auth(), "Prefer": "fault=truncate"})  # fmt: skip
    # A client that reads what came, as a streaming one does, has half a JSON document.
    with requests.post(faulty.url + GENERATE, json=BODY, timeout=30, stream=True,
                       headers={**auth(), "Prefer": "fault=truncate"}) as answer:  # fmt: skip
        got = b""
        with pytest.raises(requests.exceptions.ChunkedEncodingError):
            for chunk in answer.iter_content(1024):
                got += chunk
    with pytest.raises(json.JSONDecodeError):
        json.loads(got)
    with pytest.raises(httpx.RemoteProtocolError, match="without sending complete message body"):
        httpx.post(faulty.url + GENERATE, json=BODY, timeout=30,
                   headers={**auth(), "Prefer": "fault=truncate"})  # fmt: skip


def test_slow_body_trickles_the_whole_answer(faulty):
    data, ending, took = raw_exchange(faulty.url, "slow-body")
    headers, body = split(data)
    assert ending == "closed" or len(body) == int(headers["content-length"])
    assert len(body) == int(headers["content-length"]) and took > 1.5
    assert json.loads(body)["images"]
    chunks_at = []
    with httpx.stream("POST", faulty.url + GENERATE, json=BODY, timeout=30,
                      headers={**auth(), "Prefer": "fault=slow-body"}) as answer:  # fmt: skip
        for _ in answer.iter_raw():
            chunks_at.append(time.monotonic())
    assert len(chunks_at) >= 10 and chunks_at[-1] - chunks_at[0] > 1.5


@pytest.mark.parametrize("kind", ["429", "503"])
def test_an_injected_status_reaches_clients_as_the_service_answers_it(faulty, kind):
    answer = requests.post(faulty.url + GENERATE, json=BODY, timeout=30,
                           headers={**auth("free"), "Prefer": f"fault={kind}"})  # fmt: skip
    assert answer.status_code == int(kind) and answer.headers["Retry-After"] == "1"
    assert answer.headers["Content-Type"] == "application/problem+json"


def test_a_seeded_run_of_1000_requests_meets_what_its_seed_gives_across_2_workers(tmp_path):
    seed, rate, kinds = 7, 0.05, ("reset", "truncate", "empty", "429", "503", "slow-body")
    server = RunningServer(
        "--workers", "2", "--no-rate-limits", "--quiet", "--journal-size", "1000",
        "--faults", f"rate={rate},kinds=reset+truncate+empty+429+503+slow,seed={seed}",
    )  # fmt: skip
    try:
        met = []
        with requests.Session() as session:
            for _ in range(1000):
                try:
                    answer = session.get(server.url + "/api/v1/models/sdxl-lightning",
                                         headers=auth(), timeout=30)  # fmt: skip
                    json.loads(answer.content)
                    met.append(str(answer.status_code) if answer.status_code != 200 else None)
                except requests.ConnectionError:
                    met.append("transport")
                except (requests.exceptions.ChunkedEncodingError, ValueError):
                    met.append("transport")
        journal = requests.get(server.url + "/__admin/requests?limit=1000", timeout=30).json()
    finally:
        server.stop()
    expected = [independent_draw(seed, n, rate, kinds) for n in range(1, 1001)]
    # GET /models/{id} documents no 503: a drawn 503 lets its request through.
    expected = [None if kind == "503" else kind for kind in expected]
    # What the client met, request by request (a slow answer is a whole one).
    assert met == [
        None if kind in (None, "slow-body") else kind if kind == "429" else "transport"
        for kind in expected
    ]
    counts = {kind: expected.count(kind) for kind in kinds}
    assert sum(counts.values()) > 20  # about 5 % of 1000, 503 aside
    # The journal recorded each fault injected, in order: as many of each kind as the seed gives.
    recorded = [e["fault"]["kind"] if e["fault"] else None for e in journal["requests"][::-1]]
    assert recorded == expected
    assert {kind: recorded.count(kind) for kind in kinds} == counts


def test_a_sequence_holds_across_2_workers(faulty):
    key = KEY_FOR_PLAN["pro"]
    made = requests.post(faulty.url + "/__admin/sequences", timeout=30, json={
        "key": key, "method": "POST", "path": GENERATE, "answers": ["503"] * 6})  # fmt: skip
    assert made.status_code == 201

    def generate(_):
        return requests.post(faulty.url + GENERATE, json=BODY, headers=auth("pro"),
                             timeout=60).status_code  # fmt: skip

    with ThreadPoolExecutor(8) as pool:  # spread over both workers
        statuses = list(pool.map(generate, range(16)))
    assert statuses.count(503) == 6 and statuses.count(200) == 10


def test_a_sequence_holds_across_2_hosts_on_one_redis(redis_server):  # noqa: F811
    hosts = [RunningServer("--workers", "2", "--no-rate-limits", "--quiet",
                           "--state", redis_server.url) for _ in range(2)]  # fmt: skip
    try:
        a, b = hosts
        made = requests.post(
            a.url + "/__admin/sequences",
            timeout=30,
            json={"key": KEY_FOR_PLAN["basic"], "answers": ["429", "503"]},
        )
        assert made.status_code == 201
        assert requests.get(b.url + "/__admin/sequences", timeout=30).json() == made.json()
        first = requests.get(b.url + "/api/v1/models", headers=auth("basic"), timeout=30)
        second = requests.post(a.url + GENERATE, json=BODY, headers=auth("basic"), timeout=30)
        third = requests.post(b.url + GENERATE, json=BODY, headers=auth("basic"), timeout=30)
        assert [first.status_code, second.status_code, third.status_code] == [429, 503, 200]
        assert requests.delete(b.url + "/__admin/sequences", timeout=30).status_code == 204
        assert requests.get(a.url + "/__admin/sequences", timeout=30).json() == {"sequences": {}}
        # Seeded faults set on one host count the requests of both.
        put = requests.put(a.url + "/__admin/faults", json={"faults": "rate=0.5,kinds=429,seed=5"},
                           timeout=30)  # fmt: skip
        assert put.status_code == 200
        statuses = [requests.get((a, b)[n % 2].url + "/api/v1/models", headers=auth(),
                                 timeout=30).status_code for n in range(40)]  # fmt: skip
        expected = [independent_draw(5, n, 0.5, ("429",)) for n in range(1, 41)]
        assert statuses == [429 if kind else 200 for kind in expected]
    finally:
        for host in hosts:
            host.stop()


def test_a_sequences_file_is_loaded_once_at_start(tmp_path):
    path = tmp_path / "sequences.yaml"
    path.write_text(f"- key: {KEY_FOR_PLAN['basic']}\n  answers: ['503', '503']\n")
    server = RunningServer("--workers", "2", "--no-rate-limits", "--quiet",
                           "--sequences", str(path))  # fmt: skip
    try:
        statuses = [requests.post(server.url + GENERATE, json=BODY, headers=auth("basic"),
                                  timeout=30).status_code for _ in range(3)]  # fmt: skip
    finally:
        server.stop()
    assert statuses == [503, 503, 200]
