"""The guard in front of the app: body deadline, bounded work, oversized heads answered by the
app (as problems, with CORS, journaled); and slow clients against the real server."""

from __future__ import annotations

import io
import json
import socket
import threading
import time

import pytest
import requests
from werkzeug.test import EnvironBuilder

from mockserver.app import create_app
from mockserver.config import Config
from mockserver.guard import REFUSAL, Guard
from tests.support import KEY_FOR_PLAN, RunningServer, auth


def echo(environ, start_response):
    """Echoes the body, or names the refusal the guard handed over."""
    body = environ["wsgi.input"].read()
    refusal = environ.get(REFUSAL)
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [f"refused {refusal.status} {refusal.code}: ".encode() + body if refusal else body]


def call(app, headers=None, **environ):
    base = EnvironBuilder(path="/api/v1/generate", method="POST", headers=headers).get_environ()
    base["wsgi.input"] = io.BytesIO()
    seen = {}

    def start_response(status, headers):
        seen["status"], seen["headers"] = int(status.split()[0]), dict(headers)

    body = b"".join(app({**base, **environ}, start_response))
    return seen["status"], seen["headers"], body


class Late(io.RawIOBase):
    """A body whose bytes come after *delay* seconds."""

    def __init__(self, data: bytes, delay: float):
        self.data, self.delay = data, delay

    def read(self, size=-1):
        time.sleep(self.delay)
        return self.data


def test_a_body_arrives_whole_before_the_app_runs():
    guard = Guard(echo, max_body_bytes=100)
    status, _, body = call(guard, CONTENT_LENGTH="5", **{"wsgi.input": io.BytesIO(b"hello")})
    assert (status, body) == (200, b"hello")


def test_a_chunked_body_is_read_one_byte_past_the_limit():
    guard = Guard(echo, max_body_bytes=4)
    environ = {"HTTP_TRANSFER_ENCODING": "chunked", "wsgi.input": io.BytesIO(b"x" * 50)}
    status, _, body = call(guard, **environ)
    assert (status, body) == (200, b"xxxxx")


def test_a_body_declared_too_large_is_left_to_the_app():
    guard = Guard(echo, max_body_bytes=4)
    status, _, body = call(guard, CONTENT_LENGTH="10", **{"wsgi.input": io.BytesIO(b"y" * 10)})
    assert (status, body) == (200, b"y" * 10)  # echo read it; the real app answers 413


def test_a_body_late_past_the_deadline_is_handed_to_the_app_as_a_408():
    guard = Guard(echo, max_body_bytes=100, body_timeout_s=0.1)
    status, _, body = call(guard, CONTENT_LENGTH="2", **{"wsgi.input": Late(b"{}", 0.3)})
    assert (status, body) == (200, b"refused 408 request_timeout: {}")  # the late body kept


class Endless(io.RawIOBase):
    """A body that never comes: reading it fails the test."""

    def read(self, size=-1):
        raise AssertionError("the body of a refused head was read")


HEADS = [
    ({"PATH_INFO": "/api/v1/" + "a" * 9000}, 414, "uri_too_long"),
    ({"QUERY_STRING": "q=" + "a" * 9000}, 414, "uri_too_long"),
    ({"HTTP_X_BIG": "b" * 70_000}, 431, "headers_too_large"),
]


@pytest.mark.parametrize(("environ", "status", "code"), HEADS)
def test_oversized_heads_are_refused_without_reading_the_body(environ, status, code):
    body = {"CONTENT_LENGTH": "100", "wsgi.input": Endless()}
    got, _, answer = call(Guard(echo, max_body_bytes=100), **environ, **body)
    assert (got, answer) == (200, f"refused {status} {code}: ".encode())


@pytest.fixture
def journaled_app(spec):
    return create_app(Config(journal_size=10), spec=spec)


@pytest.mark.parametrize(("environ", "status", "code"), HEADS)
def test_refusals_are_problems_with_cors_and_journaled(journaled_app, environ, status, code):
    """The app answers the guard's refusals as its own: a page on another origin can read them,
    and the journal shows them, small."""
    guard = Guard(journaled_app, max_body_bytes=100)
    got, headers, body = call(guard, headers={"Origin": "http://app.example"}, **environ)
    assert got == status
    assert headers["Content-Type"] == "application/problem+json"
    assert json.loads(body)["code"] == code
    assert headers["Access-Control-Allow-Origin"] == "*"
    assert "Retry-After" in headers["Access-Control-Expose-Headers"]
    [entry] = journaled_app.extensions["imageapi"].journal.entries()
    assert (entry["status"], entry["code"]) == (status, code)
    assert len(json.dumps(entry)) < 40_000 and entry["truncated"]


def test_a_late_body_is_a_408_problem_and_journaled_with_its_body(journaled_app):
    guard = Guard(journaled_app, max_body_bytes=100, body_timeout_s=0.1)
    late = {"CONTENT_LENGTH": "14", "wsgi.input": Late(b'{"prompt":"p"}', 0.3)}
    status, headers, body = call(guard, headers={"Content-Type": "application/json"}, **late)
    assert status == 408
    assert headers["Content-Type"] == "application/problem+json"
    assert headers["Connection"] == "close"
    assert json.loads(body)["code"] == "request_timeout"
    [entry] = journaled_app.extensions["imageapi"].journal.entries()
    assert (entry["status"], entry["body"]) == (408, {"prompt": "p"})


def test_work_slots_bound_how_many_requests_run_the_app_at_once():
    running, most, lock = [0], [0], threading.Lock()
    gate = threading.Event()

    def app(environ, start_response):
        with lock:
            running[0] += 1
            most[0] = max(most[0], running[0])
        gate.wait(0.2)
        with lock:
            running[0] -= 1
        start_response("200 OK", [])
        return [b""]

    guard = Guard(app, max_body_bytes=100, work_slots=2)
    threads = [threading.Thread(target=call, args=(guard,)) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert most[0] == 2


def open_slow_body(port: int, key: str | None) -> socket.socket:
    """A POST whose head and first body byte are sent, and the rest never."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=15)
    authorization = f"Authorization: Bearer {key}\r\n" if key else ""
    sock.sendall(
        (
            f"POST /api/v1/generate HTTP/1.1\r\nHost: localhost\r\n{authorization}"
            "Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{"
        ).encode()
    )
    return sock


def test_slow_bodies_do_not_freeze_the_server():
    """Eight times as many stalled bodies as the worker has work slots: normal requests still get
    through, and a body that ends past its deadline gets a 408 problem."""
    server = RunningServer("--workers", "1", "--threads", "2", env={"MOCKSERVER_BODY_TIMEOUT": "2"})
    slow = []
    try:
        for index in range(16):
            key = KEY_FOR_PLAN["basic"] if index % 2 else None
            slow.append(open_slow_body(server.port, key))
        models = requests.get(server.url + "/api/v1/models", headers=auth(), timeout=5)
        assert models.status_code == 200
        generated = requests.post(
            server.url + "/api/v1/generate",
            json={"prompt": "p", "width": 256, "height": 256},
            headers=auth(),
            timeout=5,
        )
        assert generated.status_code == 200
        time.sleep(2)
        for sock in slow:
            sock.sendall(b" " * 99)
        for sock in slow:
            answer = sock.recv(4096)
            assert answer.startswith(b"HTTP/1.1 408"), answer[:200]
            assert b"application/problem+json" in answer
        assert server.alive()
    finally:
        for sock in slow:
            sock.close()
        server.stop()
